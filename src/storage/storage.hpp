#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::storage {

// Why a storage operation did not return a value. Callers act on these: a
// not_found is a miss, the others are counted and the level is skipped.
enum class Failure { not_found, timeout, error, access_denied };

std::string_view to_string(Failure f);

// A failure of a level other than not_found, as values: what kind, what the
// user should read, and the entry it was about, apart. Backends record one for
// their last failure; the chain adds the level and the operation
// (chain.hpp's Problem). The sentence is put together only where it is shown,
// with the entry named (kiln --check-storage) or standing in as "<key>", so
// that the same problem reads the same for every entry (warnings).
struct Error {
  Failure failure = Failure::error;
  // What failed, on which backend, and the likely fix. When it names the
  // entry, the entry goes at byte key_at.
  std::string message;
  // The entry as the backend names it ("ab/cd/abcd...R" in a URL or object
  // key), or empty.
  std::string key;
  size_t key_at = std::string::npos;

  // A sentence that names no entry.
  static Error plain(Failure failure, std::string message);
  // The sentence `before` + key + `after`.
  static Error naming(Failure failure, std::string before, std::string key, std::string_view after);

  bool empty() const { return message.empty(); }
  // The sentence, with the entry in its place.
  std::string text() const { return text(key); }
  // The sentence with `stand_in` in place of the entry.
  std::string text(std::string_view stand_in) const;
};

// What an entry holds; part of its key name and of its header.
enum class EntryKind : uint8_t { result = 1, manifest = 2 };

// A key of the cache: a digest and the kind of entry stored under it. Its name
// is the digest in hex followed by 'R' (result) or 'M' (manifest); stores lay
// it out as <prefix>/<k0k1>/<k2k3>/<name>.
struct Key {
  util::Digest digest;
  EntryKind kind = EntryKind::result;

  std::string name() const;
  // "ab/cd/abcd...R"
  std::string relative_path() const;
  // The inverse of name(); nullopt for anything else.
  static std::optional<Key> parse(std::string_view name);
};

// One level of the cache. Values are opaque bytes (encoded entries, see
// entry.hpp). Implementations are thread-compatible, not thread-safe.
class Storage {
 public:
  virtual ~Storage() = default;

  // A short name for messages and statistics ("local", "redis", ...).
  virtual std::string_view name() const = 0;
  virtual expected<std::string, Failure> get(const Key& key) = 0;
  // Like get(), but hands the value to `sink` (in one or more pieces, in
  // order) instead of returning it. A backend overrides it where that saves a
  // copy of a large value (Redis passes hiredis' reply buffer straight on).
  using Sink = std::function<void(std::string_view)>;
  virtual expected<void, Failure> get_to(const Key& key, const Sink& sink);
  virtual expected<void, Failure> put(const Key& key, std::string_view value) = 0;
  virtual expected<void, Failure> remove(const Key& key) = 0;
  // Whether the key is stored, without transferring the value.
  virtual expected<bool, Failure> exists(const Key& key) = 0;

  // In-flight leases (docs/configuration.md, `inflight_wait_s`): so that a
  // miss that another process, here or on another machine, is compiling
  // right now waits for its result instead of compiling it again. A lease
  // is named by a key (a manifest's) and held by `holder` (an opaque,
  // unique string) until it is released or `ttl` has passed.
  // true: this call took it; false: someone else holds a live one.
  // A level that cannot lease (the default) fails with Failure::error.
  virtual expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                                std::chrono::milliseconds ttl);
  // Ends the lease if `holder` still holds it; otherwise does nothing.
  virtual expected<void, Failure> release_lease(const Key& key, std::string_view holder);
  // Whether anyone holds a live lease on `key`.
  virtual expected<bool, Failure> lease_held(const Key& key);
  virtual bool supports_leases() const { return false; }

  // The last failure other than not_found; empty() if none.
  virtual Error last_problem() const { return {}; }
  // last_problem() as a sentence for the user, naming the entry: what failed,
  // on which backend, and the likely fix. Empty if none.
  std::string last_error() const { return last_problem().text(); }
};

}  // namespace kiln::storage
