#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/storage/storage.hpp"
#include "kiln/util/counters_file.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage {

// The ordered levels of the cache, fastest first (local disk, then remote
// levels such as Redis, S3, HTTP). Reads go from the first level down and the
// first valid value wins; a value found on a slower level is written back to
// the faster writable ones. Writes go to every writable level. A level that
// fails (timeout, error, access denied) is skipped for the rest of this
// compilation; remote levels are opened only when first needed, so a local
// hit never loads the remote-storage plugin. Not thread-safe.
class StorageChain {
 public:
  using Opener = std::function<expected<std::unique_ptr<Storage>, std::string>()>;

  struct LevelSpec {
    std::string name;  // "local", "redis", "s3", "http": prefixes its counters
    bool read_only = false;
    Storage* storage = nullptr;  // an open level (not owned), or
    Opener open;                 // how to open it on first use
    bool skip = false;           // not used at all (counted as <level>_skipped)
  };

  explicit StorageChain(std::vector<LevelSpec> levels);
  ~StorageChain();

  // Returns true if a value read from storage is usable (decodes); a value that
  // is not counts as corrupt, is removed from that level and reads go on.
  using Validator = std::function<bool(std::string_view)>;

  std::optional<std::string> get(const Key& key, const Validator& valid);
  // Returns the number of levels written.
  int put(const Key& key, std::string_view value);
  // For a value the last get() of `key` returned that passed the validator but
  // turned out unusable later (a result whose payload does not parse): counts
  // it as corrupt on the level it came from instead of a hit, and removes it
  // from that level (unless read-only) and from the faster levels get() wrote
  // it back to, so that no later compilation fetches it again. Does nothing if
  // the last get() did not return `key`.
  void discard(const Key& key);

  // Per-level counters: <level>_{hit,miss,read_error,read_timeout,write,write_error,
  // write_timeout,corrupt,read_bytes,written_bytes,backfill}.
  const util::Counters& counters() const { return m_counters; }
  // One sentence per level that failed, naming the backend and the likely fix.
  const std::vector<std::string>& problems() const { return m_problems; }
  // Levels that timed out during this compilation.
  const std::vector<std::string>& timed_out() const { return m_timed_out; }

  size_t size() const { return m_levels.size(); }
  const std::string& level_name(size_t i) const { return m_levels[i].name; }
  bool level_read_only(size_t i) const { return m_levels[i].read_only; }
  // Opens level i if needed; nullptr if it cannot be opened (see problems()).
  Storage* level(size_t i);

 private:
  struct Level {
    std::string name;
    bool read_only = false;
    Storage* storage = nullptr;
    std::unique_ptr<Storage> owned;
    Opener open;
    bool disabled = false;
    bool skip = false;
  };

  void count(const Level& level, std::string_view what, int64_t n = 1);
  void failed(Level& level, Failure f, std::string_view op);

  // Where the value of the last successful get() came from.
  struct LastHit {
    Key key;
    size_t level = 0;
    std::vector<size_t> backfilled;  // faster levels it was written back to
  };

  std::vector<Level> m_levels;
  std::optional<LastHit> m_last_hit;
  util::Counters m_counters;
  std::vector<std::string> m_problems;
  std::vector<std::string> m_timed_out;
};

}  // namespace kiln::storage
