#pragma once

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

  // A sentence for the user about the last failure other than not_found:
  // what failed, on which backend, and the likely fix. Empty if none.
  virtual std::string last_error() const { return {}; }
};

}  // namespace kiln::storage
