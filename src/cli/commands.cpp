#include "kiln/cli/commands.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kiln/cache/stats.hpp"
#include "kiln/cli/settings.hpp"
#include "kiln/config/doc_table.hpp"
#include "kiln/storage/entry.hpp"
#include "kiln/storage/levels.hpp"
#include "kiln/storage/local/cleanup.hpp"
#include "kiln/storage/local/local_storage.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/string.hpp"

#ifndef KILN_VERSION
#define KILN_VERSION "0.0.0"
#endif

namespace kiln::cli {

namespace {

int64_t now_ns() {
  return util::Clock::system().wall_ns();
}

const char k_usage[] =
    "Usage:\n"
    "  kiln <compiler> [compiler options]   compile through the cache\n"
    "  <compiler> [compiler options]        via a symlink named after the compiler\n"
    "  kiln [options]\n"
    "\n"
    "Options:\n"
    "  -s, --show-stats        show statistics (add --json for JSON)\n"
    "  -z, --zero-stats        zero the statistics (not the cache size)\n"
    "  -c, --cleanup           trim the cache to its size limit now\n"
    "  -C, --clear             remove every cached entry\n"
    "  -M, --max-size SIZE     set max_size in the configuration file (e.g. 10G, 0 = no limit)\n"
    "  -p, --show-config       show the effective configuration and where each value comes from\n"
    "  -o, --set-config K=V    set a key in the configuration file\n"
    "      --check-storage     test every configured storage level for read and write\n"
    "  -V, --version           print the version\n"
    "  -h, --help              print this help\n"
    "\n"
    "Configuration: docs/configuration.md (file: $KILN_CONFIG or ~/.config/kiln/kiln.toml).\n";

struct Row {
  const char* label;
  const char* counter;
};

constexpr Row k_uncacheable_rows[] = {
    {"Called for linking", "called_for_link"},
    {"Called for preprocessing", "called_for_preprocessing"},
    {"Multiple source files", "multiple_source_files"},
    {"No input file", "no_input_file"},
    {"Input from stdin", "stdin_input"},
    {"Output to stdout", "output_to_stdout"},
    {"Unsupported language", "unsupported_language"},
    {"Precompiled header", "precompiled_header"},
    {"Unsupported option", "unsupported_option"},
    {"Bad response file", "bad_response_file"},
    {"No output (-fsyntax-only)", "no_output"},
    {"Dependency env variables", "dependency_env"},
    {"Unknown option", "unknown_option"},
    {"Compilation failed", "compile_failed"},
    {"Preprocessing failed", "preprocessor_failed"},
    {"Local time used (__TIME__ in the source)", "time_macro"},
};

// Misses whose result was not stored (already counted as misses).
constexpr Row k_not_stored_rows[] = {
    {"Modified during compile", "modified_during_compile"},
    {"Output missing", "missing_output"},
    {"Read a file not in the key", "unlisted_input"},
    {"Wrote an unknown file", "unknown_output"},
    {"Compiler could not be traced", "untraced"},
    {"Asked for the local time", "local_time"},
};

constexpr Row k_error_rows[] = {
    {"Internal error", "error_internal"},
    {"Compiler not found", "error_compiler_not_found"},
    {"Compiler timed out", "error_compile_timeout"},
    {"Storage read error", "error_storage_read"},
    {"Storage write error", "error_storage_write"},
    {"Corrupt entries removed", "corrupt_entry"},
};

int64_t get(const util::Counters& c, const char* key) {
  auto it = c.find(key);
  return it == c.end() ? 0 : it->second;
}

std::string percent(int64_t part, int64_t whole) {
  if (whole <= 0) {
    return "";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%6.2f %%",
                100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

void print_row(const char* label, int64_t value, const std::string& extra, int indent) {
  std::printf("%*s%-*s %10lld %s\n", indent, "", 30 - indent, label, static_cast<long long>(value),
              extra.c_str());
}

// Per-level storage counters (<level>_hit, ...): every counter that is not one
// of cache::Counter.
util::Counters level_counters(const util::Counters& all) {
  util::Counters out;
  for (const auto& [name, value] : all) {
    bool known = false;
    for (size_t i = 0; i < static_cast<size_t>(cache::Counter::count_) && !known; ++i) {
      known = cache::to_string(static_cast<cache::Counter>(i)) == name;
    }
    if (!known && value != 0 && !name.starts_with("dist_")) {
      out[name] = value;
    }
  }
  return out;
}

// The build cluster's client counters (dist_*): {"jobs", "succeeded",
// "retries": {reason: n}, "local_fallbacks": {reason: n}, "bytes_sent",
// "bytes_received"} as JSON.
std::string dist_json(const util::Counters& c) {
  std::string retries, fallbacks;
  for (const auto& [name, value] : c) {
    for (auto [prefix, out] : {std::pair{std::string_view("dist_retries_"), &retries},
                               std::pair{std::string_view("dist_local_fallbacks_"), &fallbacks}}) {
      if (name.starts_with(prefix) && value != 0) {
        *out += std::string(out->empty() ? "" : ", ") + "\"" +
                util::json_escape(name.substr(prefix.size())) + "\": " + std::to_string(value);
      }
    }
  }
  return "{\"jobs\": " + std::to_string(get(c, "dist_jobs")) +
         ", \"succeeded\": " + std::to_string(get(c, "dist_succeeded")) + ", \"retries\": {" +
         retries + "}, \"local_fallbacks\": {" + fallbacks +
         "}, \"bytes_sent\": " + std::to_string(get(c, "dist_bytes_sent")) +
         ", \"bytes_received\": " + std::to_string(get(c, "dist_bytes_received")) + "}";
}

int show_stats(const cache::Config& config, bool json) {
  util::Counters c = cache::Stats::read_all(config.cache_dir);
  int64_t direct = get(c, "direct_hit");
  int64_t cpp = get(c, "preprocessed_hit");
  int64_t miss = get(c, "miss");
  int64_t hits = direct + cpp;
  int64_t cacheable = hits + miss;
  if (json) {
    std::printf("{\n  \"cache_dir\": \"%s\",\n  \"max_size\": %lld,\n",
                util::json_escape(config.cache_dir).c_str(),
                static_cast<long long>(config.storage.max_size));
    std::printf("  \"hits\": %lld,\n  \"cacheable_calls\": %lld,\n  \"counters\": {",
                static_cast<long long>(hits), static_cast<long long>(cacheable));
    for (size_t i = 0; i < static_cast<size_t>(cache::Counter::count_); ++i) {
      auto name = cache::to_string(static_cast<cache::Counter>(i));
      std::printf("%s\n    \"%s\": %lld", i ? "," : "", std::string(name).c_str(),
                  static_cast<long long>(get(c, std::string(name).c_str())));
    }
    std::printf("\n  },\n  \"levels\": {");
    bool first = true;
    for (const auto& [name, value] : level_counters(c)) {
      std::printf("%s\n    \"%s\": %lld", first ? "" : ",", util::json_escape(name).c_str(),
                  static_cast<long long>(value));
      first = false;
    }
    std::printf("\n  },\n  \"dist\": %s\n}\n", dist_json(c).c_str());
    return 0;
  }
  int64_t uncacheable = 0;
  for (const auto& r : k_uncacheable_rows) {
    uncacheable += get(c, r.counter);
  }
  int64_t errors = 0;
  for (const auto& r : k_error_rows) {
    errors += get(c, r.counter);
  }
  std::printf("Cache directory                %s\n", config.cache_dir.c_str());
  print_row("Cacheable calls", cacheable, percent(cacheable, cacheable + uncacheable), 0);
  print_row("Hits", hits, percent(hits, cacheable), 2);
  print_row("Direct", direct, percent(direct, hits), 4);
  print_row("Preprocessed", cpp, percent(cpp, hits), 4);
  print_row("Misses", miss, percent(miss, cacheable), 2);
  for (const auto& r : k_not_stored_rows) {
    if (int64_t v = get(c, r.counter)) {
      print_row((std::string("Not stored: ") + r.label).c_str(), v, percent(v, miss), 4);
    }
  }
  print_row("Uncacheable calls", uncacheable, percent(uncacheable, cacheable + uncacheable), 0);
  for (const auto& r : k_uncacheable_rows) {
    if (int64_t v = get(c, r.counter)) {
      print_row(r.label, v, percent(v, uncacheable), 2);
    }
  }
  print_row("Errors", errors, "", 0);
  for (const auto& r : k_error_rows) {
    if (int64_t v = get(c, r.counter)) {
      print_row(r.label, v, "", 2);
    }
  }
  std::printf("Local storage\n");
  int64_t size = get(c, "size");
  std::string limit = config.storage.max_size > 0
                          ? util::format_size(config.storage.max_size) + " (" +
                                util::trim(percent(size, config.storage.max_size)).data() + ")"
                          : "no limit";
  std::printf("  %-28s %10s / %s\n", "Cache size", util::format_size(size).c_str(), limit.c_str());
  print_row("Files", get(c, "files"), "", 2);
  print_row("Cleanups", get(c, "cleanups"), "", 2);
  auto levels = level_counters(c);
  if (!levels.empty()) {
    std::printf("Storage levels\n");
    for (const auto& [name, value] : levels) {
      print_row(name.c_str(), value, "", 2);
    }
  }
  if (get(c, "dist_jobs") != 0 || std::any_of(c.begin(), c.end(), [](const auto& kv) {
        return kv.first.starts_with("dist_local_fallbacks_") && kv.second != 0;
      })) {
    std::printf("Build cluster\n");
    print_row("Jobs", get(c, "dist_jobs"), "", 2);
    print_row("Compiled on the cluster", get(c, "dist_succeeded"), "", 2);
    for (const auto& [name, value] : c) {
      if (value != 0 && name.starts_with("dist_retries_")) {
        print_row(("Retried: " + name.substr(13)).c_str(), value, "", 2);
      }
    }
    for (const auto& [name, value] : c) {
      if (value != 0 && name.starts_with("dist_local_fallbacks_")) {
        print_row(("Compiled locally: " + name.substr(21)).c_str(), value, "", 2);
      }
    }
    print_row("Bytes sent", get(c, "dist_bytes_sent"), "", 2);
    print_row("Bytes received", get(c, "dist_bytes_received"), "", 2);
  }
  return 0;
}

int show_config(const cache::Config& config, const std::vector<config::Error>& errors) {
  std::printf("# config file: %s%s\n", config.config_path.c_str(),
              util::FileStat::of(config.config_path).exists() ? "" : " (not present)");
  for (const auto& e : errors) {
    std::printf("# error: %s\n", config::to_string(e).c_str());
  }
  for (const auto& decl : config.values.registry()->keys()) {
    std::printf("(%s) %s = %s\n",
                std::string(config::to_string(config.values.origin(decl.name))).c_str(),
                decl.name.c_str(), config.values.display(decl.name).c_str());
  }
  return 0;
}

// `kiln --config-doc FILE`: rewrites the key tables of FILE
// (docs/configuration.md) from the declarations; 1 if a declared section has
// no table there or a table names no declared section.
int write_config_doc(const std::string& path) {
  auto text = util::read_file(path);
  if (!text) {
    std::fprintf(stderr, "kiln: cannot read %s: %s\n", path.c_str(), std::strerror(text.error()));
    return 1;
  }
  auto update = config::update_doc_tables(*text, registry());
  for (const auto& s : update.missing_sections) {
    std::fprintf(stderr, "kiln: %s has no table for section \"%s\"\n", path.c_str(), s.c_str());
  }
  for (const auto& s : update.unknown_sections) {
    std::fprintf(stderr, "kiln: %s has a table for unknown section \"%s\"\n", path.c_str(),
                 s.c_str());
  }
  if (update.text != *text) {
    if (auto r = util::write_file_atomic(path, update.text); !r) {
      std::fprintf(stderr, "kiln: cannot write %s: %s\n", path.c_str(), std::strerror(r.error()));
      return 1;
    }
  }
  return update.missing_sections.empty() && update.unknown_sections.empty() ? 0 : 1;
}

// Brings the size and files counters in line with what is on disk.
void correct_totals(const cache::Config& config, const storage::CleanupStats& measured) {
  util::Counters total = cache::Stats::read_all(config.cache_dir);
  cache::Stats fix;
  fix.add(cache::Counter::size, measured.size_after - get(total, "size"));
  fix.add(cache::Counter::files, measured.files_after - get(total, "files"));
  fix.flush(config.cache_dir);
}

// Writes, reads back, checks and removes a test entry on every level.
int check_storage(const cache::Config& config) {
  storage::LocalStorage local(config.cache_dir);
  storage::StorageChain chain(storage::storage_levels(config.storage, &local, config.read_only));
  util::Hasher h;
  h.field("kiln-check-storage").field(now_ns()).field(static_cast<int64_t>(::getpid()));
  storage::Key key{h.finish(), storage::EntryKind::result};
  std::string value = storage::encode_entry(key.kind, "kiln --check-storage probe", 1);
  int failures = 0;
  for (size_t i = 0; i < chain.size(); ++i) {
    const std::string& name = chain.level_name(i);
    std::printf("%-6s ", name.c_str());
    std::fflush(stdout);
    storage::Storage* s = chain.level(i);
    if (!s) {
      std::printf("FAILED  %s\n",
                  chain.problems().empty() ? "cannot open" : chain.problems().back().c_str());
      ++failures;
      continue;
    }
    auto say = [&](std::string_view what, storage::Failure f) {
      std::string detail = s->last_error();
      std::printf("FAILED  %.*s: %s%s%s\n", static_cast<int>(what.size()), what.data(),
                  std::string(storage::to_string(f)).c_str(), detail.empty() ? "" : ": ",
                  detail.c_str());
      ++failures;
    };
    if (chain.level_read_only(i)) {
      auto r = s->get(key);
      if (!r && r.error() != storage::Failure::not_found) {
        say("read", r.error());
      } else {
        std::printf("ok      read (read-only level: write not tested)\n");
      }
      continue;
    }
    if (auto r = s->put(key, value); !r) {
      say("write", r.error());
      continue;
    }
    auto back = s->get(key);
    if (!back) {
      say("read back", back.error());
      continue;
    }
    if (*back != value) {
      std::printf("FAILED  read back a different value (%zu bytes, wrote %zu)\n", back->size(),
                  value.size());
      ++failures;
      continue;
    }
    auto there = s->exists(key);
    (void)s->remove(key);
    if (!there || !*there) {
      say("exists", there ? storage::Failure::not_found : there.error());
      continue;
    }
    std::printf("ok      write, read, exists, remove\n");
  }
  return failures == 0 ? 0 : 1;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "kiln: %s\nTry 'kiln --help'.\n", message.c_str());
  return 2;
}

}  // namespace

namespace {

// A directory for warn_once's markers that only this user can write:
// $TMPDIR/kiln-<uid> (or /tmp/kiln-<uid>), created with mode 0700. Used only
// if it is a real directory (not a symbolic link) owned by this user with no
// access for others: in a shared /tmp another user could otherwise pre-create
// the name. Empty if there is none.
std::string warning_marker_dir() {
  const char* tmp = std::getenv("TMPDIR");
  const uid_t uid = ::getuid();
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/kiln-" + std::to_string(uid);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return {};
  }
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid ||
      (st.st_mode & 077) != 0) {
    return {};
  }
  return dir;
}

}  // namespace

void warn_once(const std::string& message) {
  std::string shape;  // the message with every run of digits as '#'
  for (char ch : message) {
    bool digit = ch >= '0' && ch <= '9';
    if (!digit || shape.empty() || shape.back() != '#') {
      shape += digit ? '#' : ch;
    }
  }
  const std::string dir = warning_marker_dir();
  const std::string marker =
      dir.empty() ? std::string()
                  : dir + "/warned-" + util::Hasher().update(shape).finish().to_hex().substr(0, 16);
  if (!marker.empty()) {
    util::FileStat st = util::FileStat::of(marker);
    if (st.exists() && st.mtime_ns > util::Clock::system().wall_ns() - int64_t{3600} * 1000000000) {
      return;
    }
  }
  std::fprintf(stderr, "kiln: warning: %s\n", message.c_str());
  if (!marker.empty()) {
    int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      (void)::futimens(fd, nullptr);  // now: the hour starts again
      ::close(fd);
    }
  }
}

std::string cleanup_now(const cache::Config& config) {
  auto r = storage::cleanup_local(config.cache_dir, config.storage.max_size, 0.9, now_ns());
  if (r.skipped_locked) {
    return "another cleanup is running";
  }
  correct_totals(config, r);
  cache::Stats s;
  s.add(cache::Counter::cleanups);
  s.flush(config.cache_dir);
  return "removed " + std::to_string(r.files_removed) + " files (" +
         util::format_size(r.size_removed) + "), " + std::to_string(r.files_after) + " files (" +
         util::format_size(r.size_after) + ") left";
}

void maybe_start_cleanup(const cache::Config& config) {
  if (config.storage.max_size <= 0) {
    return;
  }
  util::Counters total = cache::Stats::read_all(config.cache_dir);
  if (get(total, "size") <= config.storage.max_size) {
    return;
  }
  pid_t pid = ::fork();
  if (pid != 0) {
    return;  // parent (or fork failed: try again next time)
  }
  // Detached child: keep the build's pipes free so make/ninja do not wait.
  ::setsid();
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    if (devnull > 2) {
      ::close(devnull);
    }
  }
  // Never back into the driver: its recovery would run the compiler a second
  // time, beside the parent, on the same output.
  try {
    cleanup_now(config);
  } catch (...) {
  }
  std::_Exit(0);
}

int run_command(const std::vector<std::string>& args, cache::Config& config,
                const std::vector<config::Error>& config_errors) {
  if (args.empty()) {
    std::fputs(k_usage, stderr);
    return 2;
  }
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json") {
      json = true;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* what) -> std::optional<std::string> {
      if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
        return a.substr(eq + 1);
      }
      if (i + 1 < args.size()) {
        return args[++i];
      }
      usage_error(a + " needs " + what);
      return std::nullopt;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(k_usage, stdout);
    } else if (a == "-V" || a == "--version") {
      std::printf("kiln %s\n", KILN_VERSION);
    } else if (a == "-s" || a == "--show-stats") {
      show_stats(config, json);
    } else if (a == "--json") {
      // modifier of -s
    } else if (a == "-z" || a == "--zero-stats") {
      if (!cache::Stats::zero(config.cache_dir)) {
        std::fprintf(stderr, "kiln: cannot write statistics in %s\n", config.cache_dir.c_str());
        return 1;
      }
      std::printf("Statistics zeroed\n");
    } else if (a == "-c" || a == "--cleanup") {
      std::printf("Cleanup: %s\n", cleanup_now(config).c_str());
    } else if (a == "-C" || a == "--clear") {
      int n = storage::wipe_local(config.cache_dir);
      auto measured = storage::measure_local(config.cache_dir);
      correct_totals(config, measured);
      std::printf("Cleared: removed %d files\n", n);
    } else if (a == "-M" || a.starts_with("--max-size")) {
      auto v = value("a size");
      if (!v) {
        return 2;
      }
      if (auto r = set_config_value(config.config_path, "max_size", *v); !r) {
        std::fprintf(stderr, "kiln: %s\n", config::to_string(r.error()).c_str());
        return 1;
      }
      std::printf("Set max_size = %s in %s\n", v->c_str(), config.config_path.c_str());
    } else if (a == "--check-storage") {
      return check_storage(config);
    } else if (a == "--config-doc") {
      // Hidden: for maintainers, see docs/configuration.md.
      auto v = value("a file");
      if (!v) {
        return 2;
      }
      return write_config_doc(*v);
    } else if (a == "-p" || a == "--show-config") {
      show_config(config, config_errors);
    } else if (a == "-o" || a.starts_with("--set-config")) {
      auto v = value("KEY=VALUE");
      if (!v) {
        return 2;
      }
      auto eq = v->find('=');
      if (eq == std::string::npos) {
        return usage_error("expected KEY=VALUE, got \"" + *v + "\"");
      }
      if (auto r = set_config_value(config.config_path, v->substr(0, eq), v->substr(eq + 1)); !r) {
        std::fprintf(stderr, "kiln: %s\n", config::to_string(r.error()).c_str());
        return 1;
      }
    } else {
      return usage_error("unknown option \"" + a + "\"");
    }
  }
  return 0;
}

}  // namespace kiln::cli
