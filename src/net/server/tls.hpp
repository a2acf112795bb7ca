#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::net {

struct SelfSigned {
  std::string cert_pem;
  std::string key_pem;  // unencrypted PKCS#8
};

// A fresh P-256 key and a self-signed certificate for it, valid from an hour
// ago for `days` days, with subject CN `common_name` and a subjectAltName per
// entry of `hosts` (an IP address literal becomes an IP entry, anything else
// a DNS name). The certificate is its own root (CA:TRUE), so a client that
// trusts exactly this certificate verifies a connection to any of `hosts`.
// A worker makes one at every start. The error is OpenSSL's reason.
expected<SelfSigned, std::string> make_self_signed(std::string_view common_name,
                                                   const std::vector<std::string>& hosts,
                                                   int days = 3650);

// Lowercase hex SHA-256 of the certificate's DER encoding; empty if
// `cert_pem` holds no certificate.
std::string certificate_fingerprint(std::string_view cert_pem);

}  // namespace kiln::net
