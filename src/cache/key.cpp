// Stage: the hashes that name manifests and results.
#include <time.h>

#include <cstdlib>

#include "kiln/cache/compilation.hpp"
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

int64_t Compilation::today() const {
  time_t t = static_cast<time_t>(m_inv.start_ns / 1000000000);
  struct tm tm;
  localtime_r(&t, &tm);
  return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

std::vector<std::string> Compilation::tool_files() const {
  std::vector<std::string> files;
  for (const auto& dir : m_args.tool_dirs) {
    for (const char* name : k_tool_names) {
      files.push_back(dir.ends_with('/') ? dir + name : dir + "/" + name);
    }
  }
  return files;
}

void Compilation::hash_common_info(util::Hasher& h) const {
  h.field("kiln-key-v2");
  h.update(m_compiler.identity.bytes.data(), m_compiler.identity.bytes.size());
  h.field(m_args.language);
  if (m_args.records_command_line) {
    // The object records the command line as given, names and all.
    for (const auto& word : m_args.compile_argv(m_compiler.path)) {
      h.field(word);
    }
  }
  // Arguments in order, without the output and input names (which do not
  // change the object unless listed below) and without the depfile's name.
  for (const auto& a : m_args.args) {
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
  if (m_args.split_dwarf || m_args.coverage || m_args.profile_arcs) {
    h.field("output").field(m_args.output);
  }
  // Coverage notes and data embed the working directory.
  if (m_args.coverage || m_args.profile_arcs) {
    h.field("cwd").field(m_inv.cwd);
  }
  // So does debug info, unless a prefix map rewrites it: then what the
  // matching maps leave of it is what ends up in the object.
  if (m_args.debug_info && m_cfg.hash_dir && !m_args.comp_dir_given) {
    bool mapped = false;
    for (const auto& map : m_args.prefix_maps) {
      std::string_view old_prefix = std::string_view(map).substr(0, map.find('='));
      if (m_inv.cwd.starts_with(old_prefix)) {
        h.field("cwd-after").field(std::string_view(m_inv.cwd).substr(old_prefix.size()));
        mapped = true;
      } else {
        h.field("cwd-not-under");
      }
    }
    if (!mapped) {
      h.field("cwd").field(m_inv.cwd);
    }
  }
  // Files named by options, and the tools of -B directories, by content.
  auto hash_file = [&](const std::string& path) {
    h.field("file").field(path);
    if (const auto& content = m_checker.content(path)) {
      h.update(content->digest.bytes.data(), content->digest.bytes.size());
    } else {
      h.field(m_checker.stat(path).exists() ? "unreadable" : "absent");
    }
  };
  for (const auto& path : m_args.input_files) {
    hash_file(path);
  }
  for (const auto& path : tool_files()) {
    hash_file(path);
  }
  if (m_args.uses_native_cpu) {
    h.field("cpu").field(cpu_identity());
  }
  for (const char* name : k_hashed_env) {
    if (const char* v = std::getenv(name)) {
      h.field(name).field(v);
    }
  }
}

bool Compilation::calculate_manifest_key() {
  const auto& content = m_checker.content(m_args.source);
  if (!content) {
    return true;  // unreadable source: no direct mode, the compiler will complain
  }
  if (content->has_time && !m_time_macros_ok) {
    return false;
  }
  m_source_has_date = content->has_date && !m_time_macros_ok;
  util::Hasher h;
  hash_common_info(h);
  h.field("direct").field(m_args.source);
  h.update(content->digest.bytes.data(), content->digest.bytes.size());
  if (m_source_has_date) {
    h.field("date").field(today());
  }
  m_manifest_key = h.finish();
  return true;
}

util::Digest Compilation::depend_result_key(const Includes& includes) const {
  util::Hasher h;
  h.field("depend");
  h.update(m_manifest_key->bytes.data(), m_manifest_key->bytes.size());
  for (size_t i = 0; i < includes.files.size(); ++i) {
    h.field(includes.files[i].path);
    h.update(includes.digests[i].bytes.data(), includes.digests[i].bytes.size());
  }
  if (includes.has_date && !m_time_macros_ok) {
    h.field("date").field(today());
  }
  return h.finish();
}

util::Digest Compilation::cpp_result_key(const util::RunResult& cpp,
                                         const Includes& includes) const {
  util::Hasher h;
  hash_common_info(h);
  h.field("cpp").field(cpp.out).field(cpp.err);
  // The preprocessed text drops comments and spacing, which still reach the
  // object (columns in debug info) and the diagnostics (source lines, carets,
  // fall-through comments): the bytes of every file read go in too
  // (docs/direct-mode.md, "Preprocessor mode").
  if (const auto& source = m_checker.content(m_args.source)) {
    h.update(source->digest.bytes.data(), source->digest.bytes.size());
  }
  for (size_t i = 0; i < includes.files.size(); ++i) {
    h.field(includes.files[i].path);
    h.update(includes.digests[i].bytes.data(), includes.digests[i].bytes.size());
  }
  return h.finish();
}

}  // namespace kiln::cache
