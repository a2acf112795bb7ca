#include "kiln/storage/local/local_storage.hpp"

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
