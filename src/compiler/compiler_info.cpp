#include "kiln/compiler/compiler_info.hpp"

#include <unistd.h>

#include <cstdlib>

#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

namespace kiln::compiler {

Family family_from_version(const std::string& out) {
  if (out.find("clang version") != std::string::npos) {
    return Family::clang;
  }
  if (out.find("Free Software Foundation") != std::string::npos ||
      out.find("(GCC)") != std::string::npos || out.starts_with("gcc") || out.starts_with("g++") ||
      out.find("(Debian ") != std::string::npos) {
    return Family::gcc;
  }
  return Family::unknown;
}

namespace {

std::string cache_file_for(const std::string& path, const util::FileStat& st,
                           const std::string& cache_dir) {
  util::Hasher h;
  h.field("compiler-v2")
      .field(path)
      .field(st.size)
      .field(st.mtime_ns)
      .field(st.ctime_ns)
      .field(static_cast<int64_t>(st.ino));
  return cache_dir + "/compilers/" + h.finish().to_hex();
}

bool load(const std::string& file, CompilerInfo* info) {
  auto text = util::read_file(file);
  if (!text) {
    return false;
  }
  bool have_identity = false;
  for (const auto& line : util::split(*text, '\n')) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) {
      continue;
    }
    std::string_view key(line.data(), sp);
    std::string value = line.substr(sp + 1);
    if (key == "family") {
      info->family = value == "gcc"     ? Family::gcc
                     : value == "clang" ? Family::clang
                                        : Family::unknown;
    } else if (key == "identity") {
      have_identity = util::Digest::from_hex(value, &info->identity);
    }
  }
  return have_identity;
}

void save(const std::string& file, const CompilerInfo& info) {
  std::string text = "family " + std::string(to_string(info.family)) + "\n";
  text += "identity " + info.identity.to_hex() + "\n";
  if (util::make_directories(std::string(util::dir_name(file)))) {
    (void)util::write_file_atomic(file, text);
  }
}

}  // namespace

expected<CompilerInfo, ProbeError> probe_compiler(const std::string& path,
                                                  const std::string& cache_dir) {
  util::FileStat st = util::FileStat::of(path);
  if (!st.exists()) {
    return unexpected(ProbeError::not_found);
  }
  if (!st.is_regular() || ::access(path.c_str(), X_OK) != 0) {
    return unexpected(ProbeError::not_executable);
  }
  CompilerInfo info;
  info.path = path;
  std::string file = cache_dir.empty() ? "" : cache_file_for(path, st, cache_dir);
  if (!file.empty() && load(file, &info)) {
    return info;
  }

  auto binary = util::read_file(path);
  auto version = util::run_capture({path, "--version"});
  if (!binary || !version || version->exit_code != 0) {
    return unexpected(ProbeError::probe_failed);
  }
  info.family = family_from_version(version->out);
  util::Hasher h;
  h.field("identity-v1").field(*binary).field(version->out);
  info.identity = h.finish();
  if (!file.empty()) {
    save(file, info);
  }
  return info;
}

std::string find_compiler(const std::string& name, const std::string& self) {
  if (name.find('/') != std::string::npos) {
    return util::join_path(util::current_dir(), name);
  }
  const char* path_env = std::getenv("PATH");
  if (!path_env) {
    return "";
  }
  for (const auto& dir : util::split(path_env, ':')) {
    std::string candidate = util::join_path(dir.empty() ? "." : dir, name);
    if (::access(candidate.c_str(), X_OK) != 0) {
      continue;
    }
    util::FileStat st = util::FileStat::of(candidate);
    if (!st.is_regular()) {
      continue;
    }
    std::string real = util::real_path(candidate);
    if (!self.empty() && real == self) {
      continue;  // a masquerading link to kiln itself
    }
    // Another name for kiln (e.g. a copy named g++) would also recurse.
    if (util::base_name(real) == "kiln") {
      continue;
    }
    return util::join_path(util::current_dir(), candidate);
  }
  return "";
}

}  // namespace kiln::compiler
