#include "kiln/cache/config.hpp"

#include <cstdlib>

#include "kiln/util/path.hpp"

namespace kiln::cache {

namespace {

using config::KeyDecl;
using config::Type;
using config::Value;

std::optional<std::string> absolute_dir(Value& v) {
  auto& s = std::get<std::string>(v);
  if (s.empty()) {
    return std::nullopt;
  }
  if (s.front() != '/') {
    return "must be an absolute path";
  }
  s = util::normalize(s);
  return std::nullopt;
}

KeyDecl flag(const char* name, const char* env, bool value, const char* doc) {
  return KeyDecl(name, env, Type::boolean, value ? "true" : "false", doc);
}

// The cache's keys are all in the "general" table of docs/configuration.md.
void add(config::Registry& r, KeyDecl&& decl) {
  r.add(std::move(decl).in_section("general").owned_by("cache"));
}

// Documentation order; variable names follow ccache's where one exists.
void add_keys(config::Registry& r) {
  add(r, flag("disable", "KILN_DISABLE", false, "run the compiler directly, touching nothing"));
  add(r,
      KeyDecl("base_dir", "KILN_BASEDIR", Type::string, "",
              "absolute directory; absolute paths below it in the command line are rewritten "
              "relative to the working directory (and the compiler is run with the rewritten "
              "paths), so checkouts in different directories share hits. See docs/direct-mode.md")
          .checked_by(absolute_dir));
  add(r, flag("direct_mode", "KILN_DIRECT", true,
              "look results up by the source and the headers it included last time, without "
              "running the preprocessor"));
  add(r,
      flag("depend_mode", "KILN_DEPEND", true,
           "when the build asks for a depfile (`-MD`/`-MMD`), a miss compiles at once and learns "
           "the headers from the depfile instead of running the preprocessor first"));
  add(r, flag("hash_dir", "KILN_HASHDIR", true,
              "with `-g`, put the working directory into the key, since the debug info records it "
              "(with `-fdebug-prefix-map`/`-ffile-prefix-map`, what the maps leave of it; nothing "
              "with clang's `-fdebug-compilation-dir`). `false` shares objects whose debug info "
              "names another directory"));
  add(r, flag("read_only", "KILN_READONLY", false, "use hits but store nothing"));
  add(r, flag("recache", "KILN_RECACHE", false, "never use hits, store (overwrite) results"));
  add(r, KeyDecl("inflight_wait_s", "KILN_INFLIGHT_WAIT_S", Type::integer, "0",
                 "on a miss that another kiln process is compiling right now (same source, "
                 "options and compiler; on this machine, or on any machine sharing the S3 or Redis "
                 "level), wait up to this many seconds for its result instead of compiling it "
                 "again. 0: never wait. See docs/direct-mode.md, \"Misses in flight\"")
             .between(0, 3600));
  add(r, flag("stats", "KILN_STATS", true,
              "keep statistics (the size and file counters used by cleanup are always kept)"));
  add(r, KeyDecl("compression_level", "KILN_COMPRESSLEVEL", Type::integer, "1",
                 "zstd level of stored entries (-5 … 19; 0 stores uncompressed)")
             .between(-5, 19));
  add(r, KeyDecl("file_link", "KILN_FILE_LINK", Type::choice, "copy",
                 "how a hit's object gets into place. `copy`: the object is stored compressed "
                 "inside the result entry and written out. `reflink`: stored beside the entry as a "
                 "plain file and cloned copy-on-write on a hit (btrfs, XFS; elsewhere a copy). "
                 "`hardlink`: stored as a plain file and hard-linked into place — fastest, but the "
                 "build must never modify an object in place, or the cached copy changes too "
                 "(kiln checks the size on a hit, not the content)")
             .one_of({"copy", "hardlink", "reflink"}));
  add(r, KeyDecl("log_file", "KILN_LOGFILE", Type::string, "",
                 "append a JSON-lines debug log of every decision to this file"));
}

}  // namespace

void register_settings(config::Registry& registry) {
  add_keys(registry);
}

Config make_config(config::Values values, std::string config_path) {
  Config c;
  c.cache_dir = values.get_string("cache_dir");
  c.disable = values.get_bool("disable");
  c.base_dir = values.get_string("base_dir");
  c.direct_mode = values.get_bool("direct_mode");
  c.depend_mode = values.get_bool("depend_mode");
  c.hash_dir = values.get_bool("hash_dir");
  c.read_only = values.get_bool("read_only");
  c.recache = values.get_bool("recache");
  c.inflight_wait_s = static_cast<int>(values.get_int("inflight_wait_s"));
  c.stats = values.get_bool("stats");
  c.compression_level = static_cast<int>(values.get_int("compression_level"));
  c.file_link = values.get_string("file_link");
  c.log_file = values.get_string("log_file");
  c.storage = storage::storage_settings(values);
  c.config_path = std::move(config_path);
  c.values = std::move(values);
  return c;
}

std::string default_config_path() {
  const char* explicit_path = std::getenv("KILN_CONFIG");
  if (explicit_path && *explicit_path) {
    return explicit_path;
  }
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg) {
    return std::string(xdg) + "/kiln/kiln.toml";
  }
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.config/kiln/kiln.toml";
}

}  // namespace kiln::cache
