#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::util {

// A SHA-256 digest. Keys of the cache are the lowercase hex form of one.
struct Digest {
  std::array<uint8_t, 32> bytes{};

  std::string to_hex() const;
  // Parses 64 hex characters; returns false (and leaves *out untouched) otherwise.
  static bool from_hex(std::string_view hex, Digest* out);
  bool operator==(const Digest&) const = default;
};

// Streaming SHA-256 (OpenSSL's implementation, SHA-NI accelerated where the CPU
// has it). Not thread-safe; cheap to create.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  Hasher& update(std::string_view data);
  Hasher& update(const void* data, size_t size);
  // Adds a length-prefixed field, so that ("ab","c") and ("a","bc") differ.
  Hasher& field(std::string_view data);
  Hasher& field(int64_t value);
  Digest finish();

 private:
  // OpenSSL's SHA256_CTX, constructed in place by Hasher() (hash.cpp).
  alignas(16) unsigned char m_state[128];
};

// 64-bit non-cryptographic checksum (XXH3) used to detect corrupt entries.
uint64_t checksum64(std::string_view data);

}  // namespace kiln::util
