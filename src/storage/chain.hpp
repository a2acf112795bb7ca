#pragma once

#include <chrono>
#include <compare>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/storage/storage.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage {

// What the chain was doing with a level when it failed. Opening a level counts
// as reading it (<level>_read_error).
enum class Operation { read, write };

std::string_view to_string(Operation op);

// A level that failed, as values; text() is the sentence kiln warns with.
struct Problem {
  std::string level;  // "local", "redis", ...
  Operation operation = Operation::read;
  Error error;  // the level's failure: its kind, its message, the entry apart

  // "<level>: <message>" with "<key>" in place of the entry: the same
  // problem reads the same on every compilation, so kiln warns about it once
  // (warn_once) rather than once per object of a build.
  std::string text() const;
};

// What the chain counts per level.
enum class LevelEvent {
  hit,
  miss,
  read_error,
  read_timeout,
  write,
  write_error,
  write_timeout,
  corrupt,
  read_bytes,
  written_bytes,
  backfill,
  skipped,
};

std::string_view to_string(LevelEvent e);
// read_error and read_timeout (also of opening the level).
bool is_read_failure(LevelEvent e);
// write_error and write_timeout (also of backfills).
bool is_write_failure(LevelEvent e);

// One per-level counter: a level and an event.
struct LevelCounter {
  std::string level;
  LevelEvent event = LevelEvent::hit;

  // "<level>_<event>", the name in the statistics ("redis_read_timeout").
  std::string name() const;
  auto operator<=>(const LevelCounter&) const = default;
};

using LevelCounters = std::map<LevelCounter, int64_t>;

// The ordered levels of the cache, fastest first (local disk, then remote
// levels such as Redis, S3, HTTP). Reads go from the first level down and the
// first valid value wins; a value found on a slower level is written back to
// the faster writable ones. Writes go to every writable level. A level that
// fails (timeout, error, access denied) is skipped for the rest of this
// compilation; remote levels are opened only when first needed, so a local
// hit never loads the remote-storage plugin. Not thread-safe.
class StorageChain {
 public:
  // Opens a level; the error is a sentence for the user.
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

  // Per-level counters (LevelEvent); only those that happened.
  const LevelCounters& counters() const { return m_counters; }
  // One counter; 0 if it did not happen.
  int64_t count_of(std::string_view level, LevelEvent event) const;
  // The levels that failed, in order, one problem each.
  const std::vector<Problem>& failures() const { return m_failures; }
  // failures() as sentences for the user (Problem::text()).
  std::vector<std::string> problems() const;
  // Levels that timed out during this compilation.
  const std::vector<std::string>& timed_out() const { return m_timed_out; }

  // In-flight leases (Storage::acquire_lease) on the most shared level that
  // can hold them: the last writable level that supports leases (a remote
  // level before the local one). A lease failure does not disable the level
  // for reads and writes; it only ends leasing for this compilation.
  enum class Lease { taken, held, unavailable };
  Lease acquire_lease(const Key& key, std::string_view holder, std::chrono::milliseconds ttl);
  // Whether a live lease on `key` is held (by anyone) on the level
  // acquire_lease used; nullopt if that cannot be told.
  std::optional<bool> lease_held(const Key& key);
  void release_lease(const Key& key, std::string_view holder);
  // The level leases are taken on; empty if none (or not chosen yet).
  std::string lease_level_name() const;

  size_t size() const { return m_levels.size(); }
  const std::string& level_name(size_t i) const { return m_levels[i].name; }
  bool level_read_only(size_t i) const { return m_levels[i].read_only; }
  // Opens level i if needed; nullptr if it cannot be opened (see failures()).
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

  // Where the value of the last successful get() came from.
  struct LastHit {
    Key key;
    size_t level = 0;
    std::vector<size_t> backfilled;  // faster levels it was written back to
  };

  void count(const Level& level, LevelEvent event, int64_t n = 1);
  void failed(Level& level, Failure f, Operation op);

  // The level of acquire_lease, once chosen; nullopt: none can lease.
  Storage* lease_storage();

  std::vector<Level> m_levels;
  bool m_lease_chosen = false;
  std::optional<size_t> m_lease_level;
  std::optional<LastHit> m_last_hit;
  LevelCounters m_counters;
  std::vector<Problem> m_failures;
  std::vector<std::string> m_timed_out;
};

}  // namespace kiln::storage
