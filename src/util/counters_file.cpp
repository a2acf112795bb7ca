#include "kiln/util/counters_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <string_view>

#include "kiln/util/file.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::util {

namespace {

// fcntl locks belong to the process, not to a descriptor: two threads of one
// process would both "hold" the lock, and closing any descriptor of the file
// drops it. This mutex makes the functions safe across threads too: every
// fcntl lock on a counters file is taken with it held.
Mutex g_counters_mutex;

bool valid_name(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (char c : name) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      return false;
    }
  }
  return true;
}

Counters parse(std::string_view text) {
  Counters out;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    auto space = line.find(' ');
    if (space == std::string_view::npos) {
      continue;
    }
    std::string_view name = line.substr(0, space);
    std::string_view value = line.substr(space + 1);
    int64_t v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size() || !valid_name(name)) {
      continue;
    }
    out[std::string(name)] = v;
  }
  return out;
}

std::string format(const Counters& counters) {
  std::string out;
  for (const auto& [name, value] : counters) {
    if (!valid_name(name)) {
      continue;
    }
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  }
  return out;
}

bool lock(int fd, short type) REQUIRES(g_counters_mutex) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;
  while (::fcntl(fd, F_SETLKW, &fl) != 0) {
    if (errno != EINTR) {
      return false;
    }
  }
  return true;
}

bool read_all(int fd, std::string* out) {
  out->clear();
  char buf[4096];
  off_t offset = 0;
  while (true) {
    ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    if (n == 0) {
      return true;
    }
    out->append(buf, static_cast<size_t>(n));
    offset += n;
  }
}

bool pwrite_all(int fd, std::string_view data) {
  off_t offset = 0;
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), offset);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += n;
  }
  return true;
}

int open_for_update(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0 && errno == ENOENT) {
    auto slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0 && make_directories(path.substr(0, slash))) {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    }
  }
  return fd;
}

// Opens and locks the file, lets `change` rewrite the parsed counters, writes
// them back. The lock is released by close().
template <typename Change>
bool update(const std::string& path, Change change) {
  MutexLock guard(g_counters_mutex);
  int fd = open_for_update(path);
  if (fd < 0) {
    return false;
  }
  std::string text;
  bool ok = lock(fd, F_WRLCK) && read_all(fd, &text);
  if (ok) {
    Counters counters = parse(text);
    change(counters);
    std::string out = format(counters);
    size_t size = out.size();
    // Overwrite in place, then cut. Shorter content is padded with empty lines
    // over the old bytes first, so a crash before the cut leaves nothing that
    // parses as a stale counter, and never a file without the counters.
    if (out.size() < text.size()) {
      out.resize(text.size(), '\n');
    }
    ok = pwrite_all(fd, out) && ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  }
  ok = ::close(fd) == 0 && ok;
  return ok;
}

}  // namespace

Counters read_counters(const std::string& path) {
  MutexLock guard(g_counters_mutex);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return {};
  }
  std::string text;
  bool ok = lock(fd, F_RDLCK) && read_all(fd, &text);
  ::close(fd);
  return ok ? parse(text) : Counters{};
}

bool add_counters(const std::string& path, const Counters& delta) {
  return update(path, [&](Counters& counters) {
    for (const auto& [name, value] : delta) {
      int64_t& total = counters[name];
      if (__builtin_add_overflow(total, value, &total)) {
        total = value > 0 ? INT64_MAX : INT64_MIN;
      }
    }
  });
}

bool write_counters(const std::string& path, const Counters& values) {
  return update(path, [&](Counters& counters) { counters = values; });
}

}  // namespace kiln::util
