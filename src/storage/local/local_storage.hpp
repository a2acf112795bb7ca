#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "kiln/storage/storage.hpp"
#include "kiln/util/file.hpp"

namespace kiln::storage {

// The local disk level: <dir>/<k0k1>/<k2k3>/<name>, written atomically
// (temporary file in the same directory + rename), so any number of processes
// may read and write at once and a kill -9 leaves at worst a stray temporary
// file (removed by cleanup), never a partial entry. A get refreshes the
// entry's mtime, which cleanup uses as the LRU order.
//
// The storage counts the bytes and files it adds and removes; the caller
// folds those deltas into the statistics (see cache/stats.hpp).
class LocalStorage : public Storage {
 public:
  explicit LocalStorage(std::string dir);
  ~LocalStorage() override;
  LocalStorage(const LocalStorage&) = delete;
  LocalStorage& operator=(const LocalStorage&) = delete;

  std::string_view name() const override { return "local"; }
  expected<std::string, Failure> get(const Key& key) override;
  expected<void, Failure> put(const Key& key, std::string_view value) override;
  expected<void, Failure> remove(const Key& key) override;
  expected<bool, Failure> exists(const Key& key) override;

  // Stores a copy of the file `source` beside the key's entry, named
  // <name>.<suffix> (for objects that hits hard-link or reflink into place).
  expected<void, Failure> put_file(const Key& key, std::string_view suffix,
                                   const std::string& source, util::LinkMode mode);
  // Puts the file stored by put_file at `dest` (atomically) and refreshes its
  // mtime (LRU order, and so make sees a new file after a hard link).
  expected<void, Failure> get_file(const Key& key, std::string_view suffix, const std::string& dest,
                                   util::LinkMode mode);

  // Leases are files under <dir>/leases/ locked with flock(2) by their
  // holder, which keeps the descriptor open: a holder that dies (kill -9)
  // releases at once, so `ttl` and `holder` are not needed here.
  expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                        std::chrono::milliseconds ttl) override;
  expected<void, Failure> release_lease(const Key& key, std::string_view holder) override;
  expected<bool, Failure> lease_held(const Key& key) override;
  bool supports_leases() const override { return true; }

  // Absolute path of a key's file (whether or not it exists).
  std::string path_of(const Key& key) const;

  // Disk bytes and files added (negative: removed) by this object so far.
  int64_t size_delta() const { return m_size_delta; }
  int64_t files_delta() const { return m_files_delta; }

 private:
  std::string lease_path(const Key& key) const;

  std::string m_dir;
  std::map<std::string, int> m_leases;  // lease path -> the locked descriptor
  int64_t m_size_delta = 0;
  int64_t m_files_delta = 0;
};

}  // namespace kiln::storage
