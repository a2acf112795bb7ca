#pragma once

#include <cstdint>
#include <string>

namespace kiln::storage {

// What a scan of a local cache directory found and did. Sizes are disk bytes
// (st_blocks * 512). Only entries count in files/size: files in the fan-out
// directories named <64 hex digits><R|M>, optionally followed by a suffix
// (".o", ...); files whose name contains ".tmp." are temporaries and never
// count. Everything else under the directory (stats, config, tmp/) is ignored.
struct CleanupStats {
  int64_t files_before = 0;
  int64_t size_before = 0;
  int64_t files_removed = 0;
  int64_t size_removed = 0;
  int64_t files_after = 0;
  int64_t size_after = 0;
  int64_t stale_temporaries_removed = 0;
  // True if another process was cleaning up (nothing was scanned or removed).
  bool skipped_locked = false;
};

// How old a temporary file must be (by mtime) before cleanup removes it.
inline constexpr int64_t k_stale_temporary_ns = int64_t{3600} * 1000000000;

// Cleans up the local cache in `dir` (laid out <dir>/<xx>/<yy>/<name>):
// removes temporaries and trace files (<dir>/tmp/trace.*) older than
// k_stale_temporary_ns relative to `now_ns`,
// then, if the entries occupy more than `max_size` bytes, removes entries
// least recently used first (oldest mtime; LocalStorage::get refreshes it)
// until they occupy at most max_size * target_fraction. Files sharing a name
// up to the kind letter form one entry and are removed together. max_size 0
// means unlimited. An entry used again while the scan ran is kept.
//
// Holds a non-blocking flock on <dir>/cleanup.lock; if another process holds
// it, returns at once with skipped_locked set. A missing `dir` is an empty
// cache. Safe to run while other processes read and write the cache.
CleanupStats cleanup_local(const std::string& dir, int64_t max_size, double target_fraction,
                           int64_t now_ns);

// Counts the entries of `dir` without changing anything (files_before ==
// files_after, size_before == size_after); takes no lock.
CleanupStats measure_local(const std::string& dir);

// Removes every entry and every temporary file of `dir` (kiln --clear);
// returns the number of entry files removed. Other files are left alone.
int wipe_local(const std::string& dir);

}  // namespace kiln::storage
