#include "kiln/cache/trace.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <unordered_set>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"

namespace kiln::cache {

Trace Trace::parse(std::string_view text) {
  Trace t;
  std::unordered_set<std::string> seen[4];
  auto add = [&](std::vector<std::string>& list, std::unordered_set<std::string>& set,
                 std::string_view path) {
    if (!path.empty() && set.emplace(path).second) {
      list.emplace_back(path);
    }
  };
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      break;  // no newline: cut short
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() < 2 || line[1] != ' ') {
      continue;
    }
    std::string_view path = line.substr(2);
    switch (line[0]) {
      case 'E':
        add(t.executables, seen[0], path);
        break;
      case 'A':
        add(t.absent, seen[1], path);
        break;
      case 'R':
        add(t.read, seen[2], path);
        break;
      case 'W':
        add(t.written, seen[3], path);
        break;
      case 'T':
        t.local_time = true;
        break;
      default:
        break;
    }
  }
  return t;
}

Tracer::Tracer(std::string library, const std::string& tmp_dir, const util::Environment& env)
    : m_library(std::move(library)) {
  // LD_PRELOAD splits its list at spaces and colons.
  if (m_library.empty() || m_library.find_first_of(" :") != std::string::npos ||
      !util::FileStat::of(m_library).is_regular()) {
    return;
  }
  // A read-only cache directory still gets traced compiles, in $TMPDIR.
  for (const std::string& dir : {tmp_dir, std::string(env.get_or("TMPDIR", "/tmp"))}) {
    if (!util::make_directories(dir)) {
      continue;
    }
    std::string name = dir + "/trace.XXXXXX";
    int fd = ::mkstemp(name.data());
    if (fd >= 0) {
      ::close(fd);
      m_file = std::move(name);
      return;
    }
  }
}

Tracer::~Tracer() {
  if (!m_file.empty()) {
    ::unlink(m_file.c_str());
  }
}

util::Environment Tracer::environment(const util::Environment& env) const {
  std::string preload = m_library;
  if (auto user = env.get("LD_PRELOAD"); user && !user->empty()) {
    preload = std::string(*user) + " " + m_library;
  }
  return env.with({"LD_PRELOAD=" + preload, "KILN_TRACE_FILE=" + m_file});
}

std::optional<Trace> Tracer::read() const {
  auto text = util::read_file(m_file);
  if (!text) {
    return std::nullopt;
  }
  return Trace::parse(*text);
}

extern "C" const char kiln_trace_blob[];
extern "C" const char kiln_trace_blob_end[];

std::string default_trace_library(const std::string& cache_dir) {
  std::string dir(util::dir_name(util::real_path("/proc/self/exe")));
  for (std::string candidate : {dir + "/libkiln-trace.so", dir + "/../lib/kiln/libkiln-trace.so"}) {
    candidate = util::normalize(candidate);
    if (util::FileStat::of(candidate).is_regular()) {
      return candidate;
    }
  }
  return carried_trace_library(cache_dir);
}

std::string carried_trace_library(const std::string& cache_dir) {
  // Written out once under a name that changes with its content.
  std::string_view blob(kiln_trace_blob,
                        static_cast<size_t>(kiln_trace_blob_end - kiln_trace_blob));
  std::string name = util::Hasher().update(blob).finish().to_hex().substr(0, 16);
  std::string path = cache_dir + "/lib/libkiln-trace-" + name + ".so";
  if (util::FileStat::of(path).is_regular()) {
    return path;
  }
  if (!util::make_directories(cache_dir + "/lib") || !util::write_file_atomic(path, blob)) {
    return "";
  }
  return path;
}

}  // namespace kiln::cache
