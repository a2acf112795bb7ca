#include "kiln/dist/worker/input_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::dist {

InputStore::InputStore(std::string dir, uint64_t max_bytes)
    : m_dir(std::move(dir)), m_max_bytes(max_bytes) {
  if (m_max_bytes == 0 || m_dir.empty()) {
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(m_dir, ignored);
  m_usable = static_cast<bool>(util::make_directories(m_dir));
}

std::string InputStore::path_of(const std::string& hex) const {
  return m_dir + "/" + hex.substr(0, 2) + "/" + hex;
}

namespace {

// A new file at `dest`, never one written through: an existing `dest` may be
// a link to the store's bytes.
bool write_new(const std::string& dest, std::string_view data) {
  int fd = ::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    return false;
  }
  bool ok = util::write_all(fd, data);
  int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(dest.c_str());
    errno = saved;
  }
  return ok;
}

}  // namespace

bool InputStore::place(std::string_view data, const std::string& dest) {
  auto write_copy = [&] { return errno != EEXIST && write_new(dest, data); };
  if (!m_usable || data.size() > m_max_bytes / 4) {
    return write_new(dest, data);
  }
  const std::string hex = util::Hasher().update(data).finish().to_hex();
  const std::string stored = path_of(hex);
  bool known = false;
  {
    util::MutexLock lock(m_mutex);
    auto it = m_entries.find(hex);
    if (it != m_entries.end()) {
      known = true;
      ++m_reused;
      m_lru.splice(m_lru.begin(), m_lru, it->second.lru);
    }
  }
  if (known) {
    if (::link(stored.c_str(), dest.c_str()) == 0) {
      return true;
    }
    // Evicted since (ENOENT), or as many links as the file system allows
    // (EMLINK): this job gets its own copy.
    return write_copy();
  }
  // Written under a name of its own and renamed: a job never links a file
  // half written. Two threads storing the same bytes rename the same bytes.
  const std::string sub = m_dir + "/" + hex.substr(0, 2);
  const std::string tmp = sub + "/tmp." + util::unique_suffix();
  if (!util::make_directories(sub) || !util::write_file(tmp, data) ||
      ::chmod(tmp.c_str(), 0444) != 0 || ::rename(tmp.c_str(), stored.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return write_new(dest, data);
  }
  int link_errno = 0;
  {
    util::MutexLock lock(m_mutex);
    auto [it, inserted] = m_entries.try_emplace(hex);
    if (inserted) {
      m_lru.push_front(hex);
      it->second.size = data.size();
      it->second.lru = m_lru.begin();
      m_bytes += data.size();
    }
    // Linked before eviction can take it: the link keeps the bytes.
    bool linked = ::link(stored.c_str(), dest.c_str()) == 0;
    link_errno = linked ? 0 : errno;
    evict_locked();
    if (linked) {
      return true;
    }
  }
  errno = link_errno;
  return write_copy();
}

void InputStore::evict_locked() {
  while (m_bytes > m_max_bytes && !m_lru.empty()) {
    const std::string hex = m_lru.back();
    m_lru.pop_back();
    auto it = m_entries.find(hex);
    m_bytes -= it->second.size;
    m_entries.erase(it);
    ::unlink(path_of(hex).c_str());
  }
}

uint64_t InputStore::bytes() const {
  util::MutexLock lock(m_mutex);
  return m_bytes;
}

uint64_t InputStore::files() const {
  util::MutexLock lock(m_mutex);
  return m_entries.size();
}

uint64_t InputStore::reused() const {
  util::MutexLock lock(m_mutex);
  return m_reused;
}

}  // namespace kiln::dist
