#include "kiln/dist/toolchain_cache.hpp"

#include <stdio.h>

#include <algorithm>
#include <filesystem>

#include "kiln/util/file.hpp"

namespace kiln::dist {

namespace fs = std::filesystem;

ToolchainCache::Handle::Handle(Handle&& other) noexcept
    : m_cache(std::exchange(other.m_cache, nullptr)),
      m_id(std::move(other.m_id)),
      m_root(std::move(other.m_root)) {}

ToolchainCache::Handle& ToolchainCache::Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    release();
    m_cache = std::exchange(other.m_cache, nullptr);
    m_id = std::move(other.m_id);
    m_root = std::move(other.m_root);
  }
  return *this;
}

ToolchainCache::Handle::~Handle() {
  release();
}

void ToolchainCache::Handle::release() {
  if (m_cache != nullptr) {
    std::exchange(m_cache, nullptr)->release(m_id);
  }
}

bool ToolchainCache::valid_id(const std::string& id) {
  return id.size() == 64 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

ToolchainCache::ToolchainCache(std::string dir, uint64_t max_bytes, uint64_t max_unpacked_bytes)
    : m_dir(std::move(dir)), m_max_bytes(max_bytes), m_max_unpacked_bytes(max_unpacked_bytes) {
  (void)util::make_directories(m_dir);
  struct Found {
    int64_t mtime_ns;
    std::string id;
  };
  std::vector<Found> found;
  std::vector<std::string> leftovers;
  std::error_code ec;
  for (fs::directory_iterator it(m_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.find(".tmp.") != std::string::npos) {
      leftovers.push_back(it->path().string());
    } else if (valid_id(name) && util::FileStat::lof(it->path().string()).is_directory()) {
      found.push_back({util::FileStat::lof(it->path().string()).mtime_ns, name});
    }
  }
  remove_trees(leftovers);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.id < b.id;
  });
  std::vector<uint64_t> sizes;
  for (const auto& f : found) {
    sizes.push_back(tree_size(root_of(f.id)));
  }
  std::vector<std::string> victims;
  {
    util::MutexLock lock(m_mutex);
    for (size_t i = 0; i < found.size(); ++i) {
      m_entries[found[i].id] = Entry{sizes[i], ++m_tick, 0};
      m_total += sizes[i];
    }
    victims = evict_locked();
  }
  remove_trees(victims);
}

expected<ToolchainCache::Handle, std::string> ToolchainCache::acquire(const std::string& id,
                                                                      const Fetch& fetch) {
  if (!valid_id(id)) {
    return unexpected("not a toolchain id: \"" + id + "\"");
  }
  auto mine = std::make_shared<Pending>();
  {
    util::MutexLock lock(m_mutex);
    while (true) {
      if (auto it = m_entries.find(id); it != m_entries.end()) {
        ++it->second.pins;
        it->second.last_use = ++m_tick;
        util::touch(root_of(id));  // the order survives a restart
        return Handle(this, id, root_of(id));
      }
      auto pending = m_pending.find(id);
      if (pending == m_pending.end()) {
        break;
      }
      std::shared_ptr<Pending> theirs = pending->second;
      while (!theirs->done) {
        m_done.wait(m_mutex);
      }
      if (!theirs->error.empty()) {
        return unexpected(theirs->error);
      }
      // It succeeded: the entry is there now, unless evicted already.
    }
    m_pending[id] = mine;
  }

  const std::string root = root_of(id);
  expected<uint64_t, std::string> result = 0;
  try {
    auto archive = fetch();
    if (!archive) {
      result = unexpected("cannot fetch toolchain " + id + ": " + archive.error());
    } else {
      // Not in m_entries, so nobody uses it: a leftover of a crash or of an
      // eviction that could not rename.
      std::error_code ec;
      fs::remove_all(root, ec);
      if (auto unpacked = unpack_toolchain(*archive, id, root, m_max_unpacked_bytes); !unpacked) {
        result = unexpected("cannot unpack toolchain " + id + ": " + unpacked.error());
      } else {
        result = tree_size(root);
      }
    }
  } catch (...) {
    finish(id, mine, unexpected("fetching toolchain " + id + " threw"));
    throw;
  }
  finish(id, mine, result);
  if (!result) {
    return unexpected(result.error());
  }
  return Handle(this, id, root);
}

void ToolchainCache::finish(const std::string& id, const std::shared_ptr<Pending>& pending,
                            const expected<uint64_t, std::string>& result) {
  std::vector<std::string> victims;
  {
    util::MutexLock lock(m_mutex);
    m_pending.erase(id);
    pending->done = true;
    if (result) {
      m_entries[id] = Entry{*result, ++m_tick, 1};  // pinned by the fetcher's handle
      m_total += *result;
      victims = evict_locked();
    } else {
      pending->error = result.error().empty() ? "failed" : result.error();
    }
  }
  m_done.notify_all();
  remove_trees(victims);
}

void ToolchainCache::release(const std::string& id) {
  std::vector<std::string> victims;
  {
    util::MutexLock lock(m_mutex);
    if (auto it = m_entries.find(id); it != m_entries.end()) {
      --it->second.pins;
      it->second.last_use = ++m_tick;
    }
    victims = evict_locked();
  }
  remove_trees(victims);
}

std::vector<std::string> ToolchainCache::evict_locked() {
  std::vector<std::string> victims;
  while (m_total > m_max_bytes) {
    auto oldest = m_entries.end();
    for (auto it = m_entries.begin(); it != m_entries.end(); ++it) {
      if (it->second.pins == 0 &&
          (oldest == m_entries.end() || it->second.last_use < oldest->second.last_use)) {
        oldest = it;
      }
    }
    if (oldest == m_entries.end()) {
      break;  // everything left is in use
    }
    // Renamed aside under the lock, so that a new acquire of the id finds no
    // directory in its way; removed (slow) after it.
    std::string root = root_of(oldest->first);
    std::string aside = root + util::unique_suffix();
    // If it cannot be renamed, it stays: the next unpacking of the id removes it.
    if (::rename(root.c_str(), aside.c_str()) == 0) {
      victims.push_back(aside);
    }
    m_total -= oldest->second.size;
    m_entries.erase(oldest);
  }
  return victims;
}

void ToolchainCache::remove_trees(const std::vector<std::string>& dirs) {
  for (const auto& dir : dirs) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
}

bool ToolchainCache::has(const std::string& id) const {
  util::MutexLock lock(m_mutex);
  return m_entries.count(id) != 0;
}

std::vector<std::string> ToolchainCache::ids() const {
  util::MutexLock lock(m_mutex);
  std::vector<std::string> out;
  for (const auto& entry : m_entries) {
    out.push_back(entry.first);
  }
  return out;
}

uint64_t ToolchainCache::size_bytes() const {
  util::MutexLock lock(m_mutex);
  return m_total;
}

}  // namespace kiln::dist
