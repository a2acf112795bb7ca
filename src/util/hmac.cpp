#include "kiln/util/hmac.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdexcept>

namespace kiln::util {

namespace {

// SHA-256 fetched once from OpenSSL's default provider. The library is set
// up without reading openssl.cnf, which kiln does not need and which costs
// a file read and a parse in every process that signs.
const EVP_MD* sha256() {
  static const EVP_MD* md = [] {
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    return EVP_MD_fetch(nullptr, "SHA256", nullptr);
  }();
  return md;
}

}  // namespace

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out;
  unsigned int length = 0;
  // A null key pointer is valid only with length 0; an empty view may carry one.
  static const unsigned char k_empty = 0;
  const void* key_data = key.empty() ? static_cast<const void*>(&k_empty) : key.data();
  const EVP_MD* md = sha256();
  if (!md ||
      !HMAC(md, key_data, static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.bytes.data(),
            &length) ||
      length != out.bytes.size()) {
    // Only an allocation failure inside OpenSSL gets here.
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

std::string_view digest_bytes(const Digest& digest) {
  return std::string_view(reinterpret_cast<const char*>(digest.bytes.data()), digest.bytes.size());
}

}  // namespace kiln::util
