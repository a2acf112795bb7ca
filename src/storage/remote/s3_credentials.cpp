#include "kiln/storage/remote/s3_credentials.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "kiln/net/curl_client.hpp"
#include "kiln/net/percent.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

// Web-identity credentials are renewed when less than this remains.
constexpr int64_t k_renew_before_s = 5 * 60;
constexpr std::string_view k_default_profile = "default";
constexpr std::string_view k_default_session_name = "kiln";

struct Profile {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
};

// Reads [profile] of an INI credentials file ("[name]", or "[profile name]" as
// in ~/.aws/config); nullopt if the section is not there.
std::optional<Profile> read_profile(std::string_view text, std::string_view profile) {
  std::optional<Profile> out;
  bool in_section = false;
  for (const auto& raw : util::split(text, '\n')) {
    std::string_view line = util::trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') {
      continue;
    }
    if (line.front() == '[') {
      std::string_view name = util::trim(line.substr(1, line.find(']') - 1));
      if (name.starts_with("profile ")) {
        name = util::trim(name.substr(8));
      }
      in_section = name == profile;
      if (in_section && !out) {
        out.emplace();
      }
      continue;
    }
    auto eq = line.find('=');
    if (!in_section || eq == std::string_view::npos) {
      continue;
    }
    std::string_view key = util::trim(line.substr(0, eq));
    std::string value(util::trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id") {
      out->access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      out->secret_access_key = value;
    } else if (key == "aws_session_token" || key == "aws_security_token") {
      out->session_token = value;
    }
  }
  return out;
}

std::string with_scheme(std::string endpoint) {
  if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://")) {
    endpoint = "https://" + endpoint;
  }
  return endpoint;
}

std::string xml_decode(std::string_view s) {
  static constexpr std::pair<std::string_view, char> k_entities[] = {
      {"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    bool decoded = false;
    if (s[i] == '&') {
      for (const auto& [entity, c] : k_entities) {
        if (s.substr(i, entity.size()) == entity) {
          out += c;
          i += entity.size();
          decoded = true;
          break;
        }
      }
    }
    if (!decoded) {
      out += s[i++];
    }
  }
  return out;
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value || !*value) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

std::optional<std::string> aws_xml_value(std::string_view xml, std::string_view tag) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  auto start = xml.find(open);
  if (start == std::string_view::npos) {
    return std::nullopt;
  }
  start += open.size();
  auto end = xml.find(close, start);
  if (end == std::string_view::npos) {
    return std::nullopt;
  }
  return xml_decode(xml.substr(start, end - start));
}

std::optional<int64_t> parse_aws_time(std::string_view text) {
  std::string s(util::trim(text));
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::string_view rest = std::string_view(s).substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      rest.remove_prefix(1);
    }
  }
  if (!(rest.empty() || rest == "Z" || rest == "+00:00")) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(::timegm(&tm));
}

CredentialsProvider::CredentialsProvider(S3Settings settings, EnvLookup env,
                                         const util::Clock& clock)
    : m_settings(std::move(settings)), m_env(std::move(env)), m_clock(clock) {}

CredentialsProvider::~CredentialsProvider() = default;

std::optional<std::string> CredentialsProvider::env(const std::string& name) const {
  auto value = m_env ? m_env(name) : std::nullopt;
  if (value && value->empty()) {
    return std::nullopt;
  }
  return value;
}

expected<AwsCredentials, CredentialsError> CredentialsProvider::get() {
  if (!m_current) {
    auto resolved = resolve();
    if (!resolved) {
      return resolved;
    }
    m_current = std::move(*resolved);
  }
  int64_t now = m_clock.wall_seconds();
  if (m_web_identity && m_current->expiration != 0 &&
      now + k_renew_before_s >= m_current->expiration) {
    auto renewed = assume_role_with_web_identity();
    if (renewed) {
      m_current = std::move(*renewed);
    } else if (now >= m_current->expiration) {
      return renewed;  // expired and not renewable: fail rather than be denied
    }
  }
  return *m_current;
}

expected<AwsCredentials, CredentialsError> CredentialsProvider::resolve() {
  const S3Settings& s = m_settings;
  if (s.no_credentials) {
    return AwsCredentials{{}, {}, {}, 0, "no_credentials = true (anonymous access)"};
  }

  if (!s.access_key_id.empty()) {
    if (s.secret_access_key.empty()) {
      return unexpected(
          CredentialsError{Failure::error,
                           "S3: access_key_id is set in the kiln settings but secret_access_key "
                           "is not; set both"});
    }
    return AwsCredentials{s.access_key_id, s.secret_access_key, s.session_token, 0,
                          "the kiln settings (access_key_id)"};
  }

  if (auto key_id = env("AWS_ACCESS_KEY_ID")) {
    auto secret = env("AWS_SECRET_ACCESS_KEY");
    if (!secret) {
      return unexpected(
          CredentialsError{Failure::error,
                           "S3: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not; set "
                           "both (or unset AWS_ACCESS_KEY_ID)"});
    }
    return AwsCredentials{*key_id, *secret, env("AWS_SESSION_TOKEN").value_or(""), 0,
                          "the environment (AWS_ACCESS_KEY_ID)"};
  }

  m_role_arn = !s.role_arn.empty() ? s.role_arn : env("AWS_ROLE_ARN").value_or("");
  m_token_file = !s.web_identity_token_file.empty()
                     ? s.web_identity_token_file
                     : env("AWS_WEB_IDENTITY_TOKEN_FILE").value_or("");
  if (!m_role_arn.empty() && !m_token_file.empty()) {
    m_web_identity = true;
    return assume_role_with_web_identity();
  }

  std::string file = s.credentials_file;
  if (file.empty()) {
    file = env("AWS_SHARED_CREDENTIALS_FILE").value_or("");
  }
  if (file.empty()) {
    if (auto home = env("HOME")) {
      file = *home + "/.aws/credentials";
    }
  }
  std::string profile = s.profile.empty() ? std::string(k_default_profile) : s.profile;
  if (profile == k_default_profile) {
    profile = env("AWS_PROFILE").value_or(profile);
  }
  if (!file.empty()) {
    if (auto text = util::read_file(file)) {
      auto found = read_profile(*text, profile);
      std::string source = "the shared credentials file " + file + " (profile " + profile + ")";
      if (found && !found->access_key_id.empty() && !found->secret_access_key.empty()) {
        return AwsCredentials{found->access_key_id, found->secret_access_key, found->session_token,
                              0, source};
      }
      if (found) {
        return unexpected(CredentialsError{
            Failure::error, "S3: profile '" + profile + "' in " + file +
                                " lacks aws_access_key_id or aws_secret_access_key"});
      }
    }
    if (profile != k_default_profile) {
      return unexpected(
          CredentialsError{Failure::error, "S3: profile '" + profile +
                                               "' (AWS_PROFILE or the profile setting) "
                                               "is not in the shared credentials file " +
                                               file});
    }
  }

  return AwsCredentials{{}, {}, {}, 0, "no credentials found (anonymous access)"};
}

expected<AwsCredentials, CredentialsError> CredentialsProvider::assume_role_with_web_identity() {
  std::string endpoint = !m_settings.sts_endpoint.empty()
                             ? m_settings.sts_endpoint
                             : env("AWS_ENDPOINT_URL_STS").value_or("");
  if (endpoint.empty()) {
    endpoint = "sts." + m_settings.region + ".amazonaws.com";
  }
  endpoint = with_scheme(std::move(endpoint));
  while (endpoint.ends_with('/')) {
    endpoint.pop_back();
  }
  std::string session_name = m_settings.role_session_name;
  if (session_name.empty() || session_name == k_default_session_name) {
    session_name = env("AWS_ROLE_SESSION_NAME").value_or(std::string(k_default_session_name));
  }
  std::string what =
      "S3: web identity: STS AssumeRoleWithWebIdentity for role " + m_role_arn + " at " + endpoint;

  auto token = util::read_file(m_token_file);
  if (!token) {
    return unexpected(CredentialsError{
        Failure::error, "S3: web identity: cannot read the token file " + m_token_file +
                            " (AWS_WEB_IDENTITY_TOKEN_FILE): " + std::strerror(token.error())});
  }
  std::string body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" +
                     net::percent_encode(m_role_arn) +
                     "&RoleSessionName=" + net::percent_encode(session_name) +
                     "&WebIdentityToken=" + net::percent_encode(util::trim(*token));

  if (!m_sts_client) {
    m_sts_client = net::make_curl_client(net::HttpTimeouts{m_settings.common.connect_timeout_ms,
                                                           m_settings.common.request_timeout_ms});
  }
  ++m_sts_requests;
  auto response = m_sts_client->post(
      endpoint + "/", body, {"Content-Type: application/x-www-form-urlencoded; charset=utf-8"});
  if (!response) {
    Failure f =
        response.error().kind == net::TransportError::timeout ? Failure::timeout : Failure::error;
    return unexpected(CredentialsError{
        f, what + " failed: " + response.error().message + " (check AWS_ENDPOINT_URL_STS)"});
  }
  if (response->status != 200) {
    std::string code = aws_xml_value(response->body, "Code").value_or("");
    std::string message = aws_xml_value(response->body, "Message").value_or("");
    bool denied = response->status == 401 || response->status == 403 || code == "AccessDenied" ||
                  code == "InvalidIdentityToken" || code == "ExpiredTokenException";
    return unexpected(CredentialsError{
        denied ? Failure::access_denied : Failure::error,
        what + " returned HTTP " + std::to_string(response->status) +
            (code.empty() ? "" : " " + code) + (message.empty() ? "" : ": " + message) +
            "; check AWS_ROLE_ARN, the role's trust policy and the token in " + m_token_file});
  }

  AwsCredentials creds;
  creds.access_key_id = aws_xml_value(response->body, "AccessKeyId").value_or("");
  creds.secret_access_key = aws_xml_value(response->body, "SecretAccessKey").value_or("");
  creds.session_token = aws_xml_value(response->body, "SessionToken").value_or("");
  auto expiration = aws_xml_value(response->body, "Expiration");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty() || !expiration ||
      !parse_aws_time(*expiration)) {
    return unexpected(
        CredentialsError{Failure::error, what + " returned a response without credentials"});
  }
  creds.expiration = *parse_aws_time(*expiration);
  creds.source = "web identity (role " + m_role_arn + ", token file " + m_token_file + ")";
  return creds;
}

}  // namespace kiln::storage
