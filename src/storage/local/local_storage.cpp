#include "kiln/storage/local/local_storage.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "kiln/util/file.hpp"

namespace kiln::storage {

namespace {

Failure failure_of(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Failure::not_found;
    case EACCES:
    case EPERM:
      return Failure::access_denied;
    default:
      return Failure::error;
  }
}

// For a write nothing is "not found": a path that cannot be created is an error.
Failure write_failure_of(int err) {
  Failure f = failure_of(err);
  return f == Failure::not_found ? Failure::error : f;
}

std::string parent_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

}  // namespace

LocalStorage::LocalStorage(std::string dir) : m_dir(std::move(dir)) {
  while (m_dir.size() > 1 && m_dir.back() == '/') {
    m_dir.pop_back();
  }
}

LocalStorage::~LocalStorage() {
  for (const auto& [path, fd] : m_leases) {
    ::unlink(path.c_str());
    ::close(fd);
  }
}

std::string LocalStorage::lease_path(const Key& key) const {
  return m_dir + "/leases/" + key.name();
}

expected<bool, Failure> LocalStorage::acquire_lease(const Key& key, std::string_view,
                                                    std::chrono::milliseconds) {
  const std::string path = lease_path(key);
  if (m_leases.contains(path)) {
    return true;
  }
  if (!util::make_directories(m_dir + "/leases")) {
    return unexpected(Failure::error);
  }
  // A holder unlinks its file before it unlocks it: a descriptor locked here
  // whose file is gone from the directory is an old lease, and the open is
  // tried again on the new file.
  for (int attempt = 0; attempt < 3; ++attempt) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return unexpected(Failure::error);
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      ::close(fd);
      if (e == EWOULDBLOCK) {
        return false;
      }
      return unexpected(Failure::error);
    }
    struct stat by_fd {
    }, by_path{};
    if (::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_path) == 0 &&
        by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev) {
      m_leases[path] = fd;
      return true;
    }
    ::close(fd);
  }
  return false;
}

expected<void, Failure> LocalStorage::release_lease(const Key& key, std::string_view) {
  auto it = m_leases.find(lease_path(key));
  if (it != m_leases.end()) {
    ::unlink(it->first.c_str());
    ::close(it->second);
    m_leases.erase(it);
  }
  return {};
}

expected<bool, Failure> LocalStorage::lease_held(const Key& key) {
  const std::string path = lease_path(key);
  if (m_leases.contains(path)) {
    return true;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return false;
    }
    return unexpected(Failure::error);
  }
  bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // also unlocks
  return held;
}

std::string LocalStorage::path_of(const Key& key) const {
  return m_dir + "/" + key.relative_path();
}

expected<std::string, Failure> LocalStorage::get(const Key& key) {
  std::string path = path_of(key);
  auto data = util::read_file(path);
  if (!data) {
    return unexpected(failure_of(data.error()));
  }
  util::touch(path);
  return std::move(*data);
}

expected<void, Failure> LocalStorage::put(const Key& key, std::string_view value) {
  std::string path = path_of(key);
  util::FileStat old = util::FileStat::lof(path);
  auto written = util::write_file_atomic(path, value);
  if (!written && written.error() == ENOENT) {
    // First entry in this fan-out directory: create it and try once more.
    if (auto made = util::make_directories(parent_of(path)); !made) {
      return unexpected(write_failure_of(made.error()));
    }
    written = util::write_file_atomic(path, value);
  }
  if (!written) {
    return unexpected(write_failure_of(written.error()));
  }
  util::FileStat now = util::FileStat::lof(path);
  if (old.is_regular()) {
    m_size_delta += now.disk_size() - old.disk_size();
  } else {
    m_size_delta += now.disk_size();
    m_files_delta += 1;
  }
  return {};
}

expected<void, Failure> LocalStorage::remove(const Key& key) {
  std::string path = path_of(key);
  util::FileStat st = util::FileStat::lof(path);
  if (::unlink(path.c_str()) != 0) {
    return unexpected(failure_of(errno));
  }
  m_size_delta -= st.disk_size();
  m_files_delta -= 1;
  return {};
}

expected<bool, Failure> LocalStorage::exists(const Key& key) {
  util::FileStat st = util::FileStat::of(path_of(key));
  if (st.exists()) {
    return true;
  }
  if (st.error == ENOENT || st.error == ENOTDIR) {
    return false;
  }
  return unexpected(failure_of(st.error));
}

expected<void, Failure> LocalStorage::put_file(const Key& key, std::string_view suffix,
                                               const std::string& source, util::LinkMode mode) {
  std::string path = path_of(key) + "." + std::string(suffix);
  util::FileStat old = util::FileStat::lof(path);
  // A hard link would let the build change the cached copy: store a copy.
  util::LinkMode store_mode = mode == util::LinkMode::reflink ? mode : util::LinkMode::copy;
  auto placed = util::place_file(source, path, store_mode);
  if (!placed && placed.error() == ENOENT) {
    if (auto made = util::make_directories(parent_of(path)); !made) {
      return unexpected(write_failure_of(made.error()));
    }
    placed = util::place_file(source, path, store_mode);
  }
  if (!placed) {
    return unexpected(write_failure_of(placed.error()));
  }
  util::FileStat now = util::FileStat::lof(path);
  m_size_delta += now.disk_size() - (old.is_regular() ? old.disk_size() : 0);
  m_files_delta += old.is_regular() ? 0 : 1;
  return {};
}

expected<void, Failure> LocalStorage::get_file(const Key& key, std::string_view suffix,
                                               const std::string& dest, util::LinkMode mode) {
  std::string path = path_of(key) + "." + std::string(suffix);
  if (auto placed = util::place_file(path, dest, mode); !placed) {
    return unexpected(failure_of(placed.error()));
  }
  util::touch(mode == util::LinkMode::hardlink ? path : dest);
  return {};
}

}  // namespace kiln::storage
