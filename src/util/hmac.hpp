#pragma once

#include <string_view>

#include "kiln/util/hash.hpp"

namespace kiln::util {

// HMAC-SHA256 (RFC 2104) of `data` under `key`, by OpenSSL. In its own file
// (and object) so that kiln, which never signs, does not link OpenSSL's EVP
// layer: only the remote-storage plugins do.
Digest hmac_sha256(std::string_view key, std::string_view data);

// The digest's 32 bytes as a string_view (the key of the next HMAC in a chain).
std::string_view digest_bytes(const Digest& digest);

}  // namespace kiln::util
