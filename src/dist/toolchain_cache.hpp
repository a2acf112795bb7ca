#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/dist/toolchain_unpack.hpp"
#include "kiln/util/expected.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::dist {

// A worker's unpacked toolchains: <dir>/<id>/ each, at most `max_bytes` of
// them in all (regular files' sizes), the least recently used evicted first.
// A toolchain in use is pinned by its Handle and never evicted; one larger
// than the limit is kept while pinned and evicted when released.
// Thread-safe.
class ToolchainCache {
 public:
  // Returns the archive bytes of a toolchain (e.g. a client's upload), or why not.
  using Fetch = std::function<expected<std::string, std::string>()>;

  // A toolchain in use. Must not outlive its cache.
  class Handle {
   public:
    Handle(Handle&& other) noexcept;
    Handle& operator=(Handle&& other) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle();

    const std::string& id() const { return m_id; }
    // The toolchain's root: the compiler's files below it under their absolute paths.
    const std::string& root() const { return m_root; }

   private:
    friend class ToolchainCache;
    Handle(ToolchainCache* cache, std::string id, std::string root)
        : m_cache(cache), m_id(std::move(id)), m_root(std::move(root)) {}
    void release();

    ToolchainCache* m_cache = nullptr;
    std::string m_id;
    std::string m_root;
  };

  // Creates `dir` if needed, adopts the complete toolchains in it (a toolchain
  // directory appears by rename once unpacked, so every <id>/ is one), least
  // recently used by directory mtime, and removes the leftovers of unpacking
  // or eviction (*.tmp.*). `max_unpacked_bytes` bounds a single toolchain.
  ToolchainCache(std::string dir, uint64_t max_bytes,
                 uint64_t max_unpacked_bytes = k_default_max_unpacked_bytes);

  // The toolchain `id` (64 lowercase hex digits), pinned: at once if it is
  // unpacked; else after the thread that is fetching it already is done (one
  // fetch for all, and its error for all if it fails; the next acquire tries
  // again); else calls `fetch` (on this thread, without the lock), unpacks
  // (unpack_toolchain: the archive must hash to `id`) and then evicts. Errors:
  // a malformed id, the fetch's error, the unpacking's refusal.
  expected<Handle, std::string> acquire(const std::string& id, const Fetch& fetch)
      EXCLUDES(m_mutex);

  bool has(const std::string& id) const EXCLUDES(m_mutex);
  // The unpacked toolchains' ids, sorted (for the worker's heartbeats).
  std::vector<std::string> ids() const EXCLUDES(m_mutex);
  // The bytes of all unpacked toolchains.
  uint64_t size_bytes() const EXCLUDES(m_mutex);

  static bool valid_id(const std::string& id);

 private:
  struct Entry {
    uint64_t size = 0;
    uint64_t last_use = 0;
    int pins = 0;
  };
  // A fetch in progress; its fields are guarded by m_mutex.
  struct Pending {
    bool done = false;
    std::string error;  // empty: it succeeded
  };

  std::string root_of(const std::string& id) const { return m_dir + "/" + id; }
  void release(const std::string& id) EXCLUDES(m_mutex);
  void finish(const std::string& id, const std::shared_ptr<Pending>& pending,
              const expected<uint64_t, std::string>& result) EXCLUDES(m_mutex);
  // Drops least recently used unpinned entries while over the limit; returns
  // the directories (renamed aside) to remove once the lock is released.
  std::vector<std::string> evict_locked() REQUIRES(m_mutex);
  static void remove_trees(const std::vector<std::string>& dirs);

  const std::string m_dir;
  const uint64_t m_max_bytes;
  const uint64_t m_max_unpacked_bytes;

  mutable util::Mutex m_mutex;
  std::condition_variable_any m_done;  // a Pending became done
  std::map<std::string, Entry> m_entries GUARDED_BY(m_mutex);
  std::map<std::string, std::shared_ptr<Pending>> m_pending GUARDED_BY(m_mutex);
  uint64_t m_total GUARDED_BY(m_mutex) = 0;
  uint64_t m_tick GUARDED_BY(m_mutex) = 0;
};

}  // namespace kiln::dist
