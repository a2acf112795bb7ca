#include "kiln/util/hash.hpp"

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <xxhash.h>

#include <cstring>

namespace kiln::util {

static_assert(sizeof(SHA256_CTX) <= 128, "Hasher state too small");

namespace {
SHA256_CTX* ctx(unsigned char* state) {
  return reinterpret_cast<SHA256_CTX*>(state);
}
}  // namespace

std::string Digest::to_hex() const {
  static const char k_hex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = k_hex[bytes[i] >> 4];
    out[2 * i + 1] = k_hex[bytes[i] & 0xf];
  }
  return out;
}

bool Digest::from_hex(std::string_view hex, Digest* out) {
  if (hex.size() != 64) {
    return false;
  }
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    return -1;
  };
  Digest d;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]);
    int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    d.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  *out = d;
  return true;
}

Hasher::Hasher() {
  SHA256_Init(ctx(m_state));
}
Hasher::~Hasher() = default;

Hasher& Hasher::update(const void* data, size_t size) {
  SHA256_Update(ctx(m_state), data, size);
  return *this;
}

Hasher& Hasher::update(std::string_view data) {
  return update(data.data(), data.size());
}

Hasher& Hasher::field(std::string_view data) {
  uint64_t n = data.size();
  update(&n, sizeof n);
  return update(data);
}

Hasher& Hasher::field(int64_t value) {
  return update(&value, sizeof value);
}

Digest Hasher::finish() {
  Digest d;
  SHA256_Final(d.bytes.data(), ctx(m_state));
  return d;
}

uint64_t checksum64(std::string_view data) {
  return XXH3_64bits(data.data(), data.size());
}

}  // namespace kiln::util
