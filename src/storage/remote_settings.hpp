#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln::storage {

// Settings shared by every remote backend.
struct RemoteCommon {
  int connect_timeout_ms = 1000;  // TCP (and TLS) connect
  int request_timeout_ms = 5000;  // one whole request
  bool read_only = false;
};

// S3 or an S3-compatible store (MinIO, moto). Field names map one to one onto
// the Helm values parallelCompilation.sccache.s3.* (docs/configuration.md).
struct S3Settings {
  RemoteCommon common;
  std::string bucket;    // required
  std::string endpoint;  // host[:port]; empty: s3.<region>.amazonaws.com
  std::string region = "us-east-1";
  std::string key_prefix;  // objects are <key_prefix>/<k0k1>/<k2k3>/<key>
  bool use_ssl = true;
  bool path_style = false;             // true: https://endpoint/bucket/key (MinIO, moto)
  std::string server_side_encryption;  // "", "AES256" or "aws:kms"
  std::string sse_kms_key_id;          // with aws:kms
  bool no_credentials = false;         // anonymous, read-only access

  // Credentials, resolved in the usual AWS order when not given here:
  // environment, web identity (role + token file, via STS), shared credentials file.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string profile = "default";
  std::string credentials_file;         // default ~/.aws/credentials
  std::string role_arn;                 // AWS_ROLE_ARN
  std::string web_identity_token_file;  // AWS_WEB_IDENTITY_TOKEN_FILE
  std::string role_session_name = "kiln";
  std::string sts_endpoint;  // default https://sts.<region>.amazonaws.com; tests: moto
};

// Redis: redis://[[user]:password@]host[:port][/db]
struct RedisSettings {
  RemoteCommon common;
  std::string url;
  std::string key_prefix;
  int64_t expiration_s = 0;  // 0: keys do not expire
};

// Plain HTTP(S) GET/PUT/HEAD, e.g. nginx with WebDAV.
struct HttpSettings {
  RemoteCommon common;
  std::string url;  // base URL; objects are <url>/<k0k1>/<k2k3>/<key>
  std::string bearer_token;
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace kiln::storage
