#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/storage/remote/settings.hpp"
#include "kiln/storage/storage.hpp"
#include "kiln/util/clock.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::net {
class HttpClient;
}

namespace kiln::storage {

// Looks up an environment variable; nullopt when it is unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// The process environment (getenv); empty values count as unset.
EnvLookup process_environment();

struct AwsCredentials {
  std::string access_key_id;  // empty: anonymous (unsigned requests)
  std::string secret_access_key;
  std::string session_token;
  int64_t expiration = 0;  // Unix seconds; 0: does not expire
  // Where they came from, for messages: "the environment (AWS_ACCESS_KEY_ID)", ...
  std::string source;

  bool anonymous() const { return access_key_id.empty(); }
};

struct CredentialsError {
  Failure failure = Failure::error;
  std::string message;  // a sentence for the user, naming the source and the fix
};

// Finds the credentials for S3 in the usual AWS order, on the first get():
//  1. no_credentials = true: anonymous;
//  2. the settings (access_key_id, secret_access_key, session_token);
//  3. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//  4. web identity: role (settings.role_arn, else AWS_ROLE_ARN) and token file
//     (settings.web_identity_token_file, else AWS_WEB_IDENTITY_TOKEN_FILE),
//     exchanged at STS with AssumeRoleWithWebIdentity (an unsigned POST to
//     settings.sts_endpoint, else AWS_ENDPOINT_URL_STS, else
//     https://sts.<region>.amazonaws.com); session name AWS_ROLE_SESSION_NAME
//     when set and settings.role_session_name is the default;
//  5. the shared credentials file (settings.credentials_file, else
//     AWS_SHARED_CREDENTIALS_FILE, else $HOME/.aws/credentials), profile
//     settings.profile, or AWS_PROFILE when settings.profile is "default";
//  6. anonymous.
// Web-identity credentials are renewed (token file read again) once less
// than 5 minutes remain before they expire; if renewal fails, they are used
// until they expire. A key ID without its secret, a token file that cannot be
// read, an STS failure and a named profile missing from the file are errors,
// not a fall-through to the next source. Expiry is judged by clock.wall(),
// STS is reached through libcurl (net::make_curl_client). Thread-compatible.
class CredentialsProvider {
 public:
  // `clock` must outlive the provider.
  CredentialsProvider(S3Settings settings, EnvLookup env,
                      const util::Clock& clock = util::Clock::system());
  ~CredentialsProvider();
  CredentialsProvider(const CredentialsProvider&) = delete;
  CredentialsProvider& operator=(const CredentialsProvider&) = delete;

  // The credentials to sign the next request with.
  expected<AwsCredentials, CredentialsError> get();

  // Requests sent to STS so far.
  int sts_requests() const { return m_sts_requests; }

 private:
  expected<AwsCredentials, CredentialsError> resolve();
  expected<AwsCredentials, CredentialsError> assume_role_with_web_identity();
  std::optional<std::string> env(const std::string& name) const;

  S3Settings m_settings;
  EnvLookup m_env;
  const util::Clock& m_clock;
  std::optional<AwsCredentials> m_current;
  bool m_web_identity = false;  // m_current came from STS and is renewable
  std::string m_role_arn;
  std::string m_token_file;
  std::unique_ptr<net::HttpClient> m_sts_client;  // created on the first STS request
  int m_sts_requests = 0;
};

// The text of the first element <tag>...</tag> in an AWS XML response, with
// the five predefined XML entities decoded; nullopt if there is none.
std::optional<std::string> aws_xml_value(std::string_view xml, std::string_view tag);

// Parses an ISO 8601 UTC time as STS writes it ("2024-05-01T12:00:00Z",
// optionally with fractional seconds) into Unix seconds.
std::optional<int64_t> parse_aws_time(std::string_view text);

}  // namespace kiln::storage
