#include "kiln/util/file.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>

#include "kiln/util/clock.hpp"

namespace kiln::util {

namespace {

FileStat from_stat(const struct stat& st) {
  FileStat s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.size = st.st_size;
  s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  s.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1000000000 + st.st_ctim.tv_nsec;
  s.atime_ns = int64_t{st.st_atim.tv_sec} * 1000000000 + st.st_atim.tv_nsec;
  s.blocks = st.st_blocks;
  return s;
}

FileStat failed() {
  FileStat s;
  s.error = errno;
  return s;
}

}  // namespace

bool FileStat::is_regular() const {
  return exists() && S_ISREG(mode);
}
bool FileStat::is_directory() const {
  return exists() && S_ISDIR(mode);
}

FileStat FileStat::of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? from_stat(st) : failed();
}

FileStat FileStat::lof(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? from_stat(st) : failed();
}

FileStat FileStat::of_fd(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? from_stat(st) : failed();
}

expected<std::string, int> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return unexpected(errno);
  }
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    out.reserve(static_cast<size_t>(st.st_size) + 1);
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      ::close(fd);
      return unexpected(err);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

expected<void, int> write_file(const std::string& path, std::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    return unexpected(errno);
  }
  if (!write_all(fd, data)) {
    int err = errno;
    ::close(fd);
    return unexpected(err);
  }
  if (::close(fd) != 0) {
    return unexpected(errno);
  }
  return {};
}

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  auto now = Clock::system().steady().time_since_epoch().count();
  char buf[96];
  std::snprintf(buf, sizeof buf, ".tmp.%d.%llx.%llu", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(now),
                static_cast<unsigned long long>(counter.fetch_add(1)));
  return buf;
}

AtomicFile::~AtomicFile() {
  discard();
}

void AtomicFile::discard() {
  if (m_fd >= 0) {
    ::close(m_fd);
    m_fd = -1;
  }
  if (!m_tmp.empty()) {
    ::unlink(m_tmp.c_str());
    m_tmp.clear();
  }
}

expected<void, int> AtomicFile::open() {
  if (m_error != 0) {
    return unexpected(m_error);
  }
  discard();
  m_tmp = m_path + unique_suffix();
  m_fd = ::open(m_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (m_fd < 0) {
    m_error = errno;
    m_tmp.clear();
    return unexpected(m_error);
  }
  return {};
}

expected<void, int> AtomicFile::write(std::string_view data) {
  if (m_error == 0 && m_fd < 0) {
    m_error = EBADF;
  }
  if (m_error == 0 && !write_all(m_fd, data)) {
    m_error = errno != 0 ? errno : EIO;
  }
  if (m_error != 0) {
    discard();
    return unexpected(m_error);
  }
  return {};
}

expected<void, int> AtomicFile::commit() {
  if (m_error == 0 && m_fd < 0) {
    m_error = EBADF;
  }
  if (m_error == 0) {
    int fd = m_fd;
    m_fd = -1;
    if (::close(fd) != 0) {
      m_error = errno;
    } else if (::rename(m_tmp.c_str(), m_path.c_str()) != 0) {
      m_error = errno;
    } else {
      m_tmp.clear();
      return {};
    }
  }
  discard();
  return unexpected(m_error);
}

expected<void, int> write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile file(path);
  if (auto r = file.open(); !r) {
    return r;
  }
  if (auto r = file.write(data); !r) {
    return r;
  }
  return file.commit();
}

expected<void, int> make_directories(const std::string& path) {
  if (path.empty()) {
    return {};
  }
  if (::mkdir(path.c_str(), 0777) == 0 || errno == EEXIST) {
    return {};
  }
  if (errno != ENOENT) {
    return unexpected(errno);
  }
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) {
    return unexpected(ENOENT);
  }
  if (auto r = make_directories(path.substr(0, slash)); !r) {
    return r;
  }
  if (::mkdir(path.c_str(), 0777) == 0 || errno == EEXIST) {
    return {};
  }
  return unexpected(errno);
}

expected<void, int> copy_file_atomic(const std::string& from, const std::string& to) {
  auto data = read_file(from);
  if (!data) {
    return unexpected(data.error());
  }
  return write_file_atomic(to, *data);
}

namespace {

// Copies the whole of `in` to `out` (both open); returns 0 or an errno.
int copy_fd(int in, int out) {
  while (true) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, size_t{1} << 30, 0);
    if (n == 0) {
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;  // not supported here: plain read/write below
    }
  }
  if (::lseek(in, 0, SEEK_SET) != 0 || ::lseek(out, 0, SEEK_SET) != 0 || ::ftruncate(out, 0)) {
    return errno;
  }
  char buf[65536];
  while (true) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errno;
    }
    if (n == 0) {
      return 0;
    }
    if (!write_all(out, std::string_view(buf, static_cast<size_t>(n)))) {
      return errno;
    }
  }
}

}  // namespace

expected<void, int> place_file(const std::string& from, const std::string& to, LinkMode mode) {
  std::string tmp = to + unique_suffix();
  if (mode == LinkMode::hardlink) {
    if (::link(from.c_str(), tmp.c_str()) == 0) {
      if (::rename(tmp.c_str(), to.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return unexpected(err);
      }
      return {};
    }
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
      return unexpected(errno);
    }
  }
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    return unexpected(errno);
  }
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (out < 0) {
    int err = errno;
    ::close(in);
    return unexpected(err);
  }
  int err = 0;
  if (mode != LinkMode::reflink || ::ioctl(out, FICLONE, in) != 0) {
    err = copy_fd(in, out);
  }
  ::close(in);
  if (::close(out) != 0 && err == 0) {
    err = errno;
  }
  if (err == 0 && ::rename(tmp.c_str(), to.c_str()) != 0) {
    err = errno;
  }
  if (err != 0) {
    ::unlink(tmp.c_str());
    return unexpected(err);
  }
  return {};
}

void touch(const std::string& path) {
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
}

}  // namespace kiln::util
