#pragma once

#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kiln/util/thread_annotations.hpp"

namespace kiln::dist {

// A worker's store of job inputs by content (SHA-256), so that the headers
// every job brings (the system's, the project's) are written once and
// hard-linked into each job's root after that.
//
// Why: a job has hundreds of inputs, and writing them as new files then
// removing them with the job costs an inode each, twice. On some file
// systems that is most of a job's setup (ext4 without a journal scans its
// recently freed inodes on every create: 5 s of an 18-job build, measured in
// docs/benchmarks.md). A hard link takes no inode, and removing one frees
// none.
//
// Only inputs the sandbox mounts read-only may be placed from the store
// (make_job_root keeps the ones under the job's writable working directory
// as copies): a job can then never change the store's bytes for the next.
// The store's files are 0444 and named by the digest of what was written,
// computed here: a client cannot put other bytes under a digest.
//
// At most `max_bytes` of content, the least recently used removed first
// (a file removed while a job links it stays with that job). The store is
// emptied when it is opened: it is a cache of this process's jobs.
// Thread-safe.
class InputStore {
 public:
  InputStore(std::string dir, uint64_t max_bytes);

  // Makes `dest` (which must not exist) a file holding `data`, hard-linked
  // to the store's copy where it can be, written where not (a store that is
  // off, full of links or gone). False (with errno set) if neither worked.
  bool place(std::string_view data, const std::string& dest);

  uint64_t bytes() const;
  uint64_t files() const;
  // Placements answered with a link to bytes stored by an earlier one.
  uint64_t reused() const;

 private:
  struct Entry {
    uint64_t size = 0;
    std::list<std::string>::iterator lru;  // in m_lru, most recent at the front
  };
  std::string path_of(const std::string& hex) const;
  // Under m_mutex: drops least recently used entries past the limit.
  void evict_locked() REQUIRES(m_mutex);

  const std::string m_dir;
  const uint64_t m_max_bytes;
  bool m_usable = false;
  mutable util::Mutex m_mutex;
  std::unordered_map<std::string, Entry> m_entries GUARDED_BY(m_mutex);
  std::list<std::string> m_lru GUARDED_BY(m_mutex);
  uint64_t m_bytes GUARDED_BY(m_mutex) = 0;
  uint64_t m_reused GUARDED_BY(m_mutex) = 0;
};

}  // namespace kiln::dist
