#include "kiln/util/hash.hpp"

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <xxhash.h>

#include <cstring>
#include <new>

#include "kiln/util/hex.hpp"

namespace kiln::util {

// SHA256_CTX lives in Hasher::m_state, constructed there by Hasher() (the
// header does not include OpenSSL's). The low-level SHA-256 calls are
// deprecated in OpenSSL 3 in favour of EVP, which kiln does not use here:
// linked statically, EVP brings OpenSSL's provider machinery, ~4 MB and
// ~1 ms at the first digest of every process, on the hit path.
static_assert(sizeof(SHA256_CTX) <= 128, "Hasher state too small");
static_assert(alignof(SHA256_CTX) <= 16, "Hasher state misaligned");

namespace {
SHA256_CTX* ctx(unsigned char* state) {
  return std::launder(reinterpret_cast<SHA256_CTX*>(state));
}
}  // namespace

std::string Digest::to_hex() const {
  return util::to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

bool Digest::from_hex(std::string_view hex, Digest* out) {
  // Keys are written in lowercase only: one spelling per key.
  bool lowercase = hex.find_first_of("ABCDEF") == std::string_view::npos;
  auto decoded = lowercase && hex.size() == 64 ? util::from_hex(hex) : std::nullopt;
  if (!decoded) {
    return false;
  }
  std::memcpy(out->bytes.data(), decoded->data(), out->bytes.size());
  return true;
}

Hasher::Hasher() {
  SHA256_Init(::new (static_cast<void*>(m_state)) SHA256_CTX);
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
