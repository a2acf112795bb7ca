#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/net/http_client.hpp"
#include "kiln/util/clock.hpp"

namespace kiln::storage {

// AWS Signature Version 4 signing of one request, by kiln rather than by
// curl's CURLOPT_AWS_SIGV4, which in curl 7.88 orders the signed headers
// wrongly when one header name is a prefix of another
// (x-amz-server-side-encryption and ...-aws-kms-key-id) and signs headers it
// does not send ("Expect:").
struct AwsSigning {
  std::string region;
  std::string service = "s3";
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term keys
  // Whether x-amz-content-sha256 is sent and signed: S3 requires it, other
  // services (and the AWS SigV4 test suite) do without.
  bool content_sha256_header = true;
};

// The headers that sign a request with AWS Signature Version 4 at
// `unix_time` (seconds): Host, x-amz-date, x-amz-content-sha256 (unless
// aws.content_sha256_header is false), x-amz-security-token (with a session token) and
// Authorization. Every header of `headers` ("Name: value", empty values skipped; values trimmed and
// inner runs of spaces collapsed; repeated names joined with commas) is signed as well and must be
// sent unchanged; a Host or x-amz-content-sha256 among them is replaced by ours. `payload_hash` is
// the lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD". The path is signed as it is in the
// URL (S3's rule: encoded once), the query with its parameters sorted by name, then value.
std::vector<std::string> sign_aws_v4(const AwsSigning& aws, std::string_view method,
                                     std::string_view url, const std::vector<std::string>& headers,
                                     std::string_view payload_hash, int64_t unix_time);

// Signs `request` at clock.wall(): the headers it would send (its own plus
// the Content-Type a transport adds to a body) are signed with the SHA-256 of
// its body, and the signature headers appended. The URL's path and query must
// be percent-encoded already (net::percent_encode).
void sign_request(net::HttpRequest* request, const AwsSigning& aws, const util::Clock& clock);

}  // namespace kiln::storage
