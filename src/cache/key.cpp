// Stage: the hashes that name manifests and results.
#include <time.h>

#include "kiln/cache/key.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"

namespace kiln::cache {

namespace {

// Environment variables that change the compiler's output.
constexpr const char* k_hashed_env[] = {
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "OBJCPLUS_INCLUDE_PATH",
    "SOURCE_DATE_EPOCH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "GCC_COMPARE_DEBUG",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "CCC_OVERRIDE_OPTIONS",
    // The diagnostics' colours, links and line width.
    "GCC_COLORS",
    "GCC_URLS",
    "TERM_URLS",
    "COLUMNS",
};

// The programs gcc's driver looks for in a -B directory.
constexpr const char* k_tool_names[] = {"cc1", "cc1plus",  "cc1obj", "cc1objplus",  "cpp",  "as",
                                        "ld",  "collect2", "lto1",   "lto-wrapper", "specs"};

// The CPU description that -march=native resolves against.
std::string cpu_identity() {
  auto text = util::read_file("/proc/cpuinfo");
  if (!text) {
    return "unknown";
  }
  std::string out;
  for (const auto& line : util::split(*text, '\n')) {
    if (line.starts_with("model name") || line.starts_with("flags")) {
      out += line;
      out += '\n';
    }
    if (line.empty() && !out.empty()) {
      break;  // the first processor is enough
    }
  }
  return out;
}

}  // namespace

bool time_macros_fixed(const util::Environment& env) {
  return env.has("SOURCE_DATE_EPOCH");
}

int64_t local_date(int64_t unix_ns) {
  time_t t = static_cast<time_t>(unix_ns / 1000000000);
  struct tm tm;
  localtime_r(&t, &tm);
  return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

std::vector<std::string> tool_files(const compiler::ProcessedArgs& args) {
  std::vector<std::string> files;
  for (const auto& dir : args.tool_dirs) {
    for (const char* name : k_tool_names) {
      files.push_back(dir.ends_with('/') ? dir + name : dir + "/" + name);
    }
  }
  return files;
}

void hash_common_info(util::Hasher& h, const KeyInputs& in) {
  const compiler::ProcessedArgs& args = in.args;
  h.field("kiln-key-v2");
  h.update(in.compiler.identity.bytes.data(), in.compiler.identity.bytes.size());
  h.field(args.language);
  if (args.records_command_line) {
    // The object records the command line as given, names and all.
    for (const auto& word : args.compile_argv(in.compiler.path)) {
      h.field(word);
    }
  }
  // Arguments in order, without the output and input names (which do not
  // change the object unless listed below) and without the depfile's name.
  for (const auto& a : args.args) {
    using compiler::ArgClass;
    if (a.cls == ArgClass::output || a.cls == ArgClass::input || a.cls == ArgClass::ignored) {
      continue;
    }
    if (a.cls == ArgClass::dependency && a.tokens[0].starts_with("-MF")) {
      h.field("-MF");
      continue;
    }
    for (const auto& t : a.tokens) {
      h.field(t);
    }
  }
  // Outputs whose names end up inside the object.
  if (args.split_dwarf || args.coverage || args.profile_arcs) {
    h.field("output").field(args.output);
  }
  // Coverage notes and data embed the working directory.
  if (args.coverage || args.profile_arcs) {
    h.field("cwd").field(in.cwd);
  }
  // So does debug info, unless a prefix map rewrites it: then what the
  // matching maps leave of it is what ends up in the object.
  if (args.debug_info && in.hash_dir && !args.comp_dir_given) {
    bool mapped = false;
    for (const auto& map : args.prefix_maps) {
      std::string_view old_prefix = std::string_view(map).substr(0, map.find('='));
      if (in.cwd.starts_with(old_prefix)) {
        h.field("cwd-after").field(std::string_view(in.cwd).substr(old_prefix.size()));
        mapped = true;
      } else {
        h.field("cwd-not-under");
      }
    }
    if (!mapped) {
      h.field("cwd").field(in.cwd);
    }
  }
  // Files named by options, and the tools of -B directories, by content.
  auto hash_file = [&](const std::string& path) {
    h.field("file").field(path);
    if (const auto& content = in.files.content(path)) {
      h.update(content->digest.bytes.data(), content->digest.bytes.size());
    } else {
      h.field(in.files.stat(path).exists() ? "unreadable" : "absent");
    }
  };
  for (const auto& path : args.input_files) {
    hash_file(path);
  }
  for (const auto& path : tool_files(args)) {
    hash_file(path);
  }
  if (args.uses_native_cpu) {
    h.field("cpu").field(cpu_identity());
  }
  for (const char* name : k_hashed_env) {
    if (auto v = in.env.get(name)) {
      h.field(name).field(*v);
    }
  }
}

std::optional<ManifestKey> manifest_key(const KeyInputs& in, int64_t today) {
  ManifestKey key;
  const auto& content = in.files.content(in.args.source);
  if (!content) {
    return key;  // unreadable source: no direct mode, the compiler will complain
  }
  const bool fixed = time_macros_fixed(in.env);
  if (content->has_time && !fixed) {
    return std::nullopt;
  }
  key.source_has_date = content->has_date && !fixed;
  util::Hasher h;
  hash_common_info(h, in);
  h.field("direct").field(in.args.source);
  h.update(content->digest.bytes.data(), content->digest.bytes.size());
  if (key.source_has_date) {
    h.field("date").field(today);
  }
  key.digest = h.finish();
  return key;
}

util::Digest depend_result_key(const util::Digest& manifest_key, const Includes& includes,
                               int64_t date) {
  util::Hasher h;
  h.field("depend");
  h.update(manifest_key.bytes.data(), manifest_key.bytes.size());
  for (size_t i = 0; i < includes.files.size(); ++i) {
    h.field(includes.files[i].path);
    h.update(includes.digests[i].bytes.data(), includes.digests[i].bytes.size());
  }
  if (date != 0) {
    h.field("date").field(date);
  }
  return h.finish();
}

util::Digest cpp_result_key(const KeyInputs& in, std::string_view cpp_out, std::string_view cpp_err,
                            const Includes& includes) {
  util::Hasher h;
  hash_common_info(h, in);
  h.field("cpp").field(cpp_out).field(cpp_err);
  // The preprocessed text drops comments and spacing, which still reach the
  // object (columns in debug info) and the diagnostics (source lines, carets,
  // fall-through comments): the bytes of every file read go in too
  // (docs/direct-mode.md, "Preprocessor mode").
  if (const auto& source = in.files.content(in.args.source)) {
    h.update(source->digest.bytes.data(), source->digest.bytes.size());
  }
  for (size_t i = 0; i < includes.files.size(); ++i) {
    h.field(includes.files[i].path);
    h.update(includes.digests[i].bytes.data(), includes.digests[i].bytes.size());
  }
  return h.finish();
}

bool is_output_environment(std::string_view name) {
  for (const char* v : k_hashed_env) {
    if (name == v) {
      return true;
    }
  }
  return name.starts_with("LC_") || name == "LANGUAGE";
}

}  // namespace kiln::cache
