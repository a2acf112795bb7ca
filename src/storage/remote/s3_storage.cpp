#include "kiln/storage/remote/s3_storage.hpp"

#include <utility>

#include "kiln/net/curl_client.hpp"
#include "kiln/net/percent.hpp"
#include "kiln/storage/remote/aws_sigv4.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

std::string trim_slashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') {
    s.remove_prefix(1);
  }
  while (!s.empty() && s.back() == '/') {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// Percent-encodes each segment of a slash-separated path (S3 object keys are
// encoded once in the URL and in the SigV4 canonical request).
std::string encode_path(std::string_view path) {
  std::string out;
  for (const auto& segment : util::split(path, '/')) {
    if (!out.empty()) {
      out += '/';
    }
    out += net::percent_encode(segment);
  }
  return out;
}

// The lease on `key`, as a path under the prefix.
std::string lease_path(const Key& key) {
  return "leases/" + key.name();
}

// A lease object's body, "<expiry, unix epoch ms> <holder>"; nullopt when it
// is not one.
struct LeaseRecord {
  int64_t expiry_ms = 0;
  std::string_view holder;
};

std::optional<LeaseRecord> parse_lease(std::string_view body) {
  size_t space = body.find(' ');
  if (space == std::string_view::npos) {
    return std::nullopt;
  }
  auto expiry = util::parse_int(body.substr(0, space));
  if (!expiry) {
    return std::nullopt;
  }
  return LeaseRecord{*expiry, body.substr(space + 1)};
}

std::string_view permission_for(std::string_view method) {
  if (method == "PUT") {
    return "s3:PutObject";
  }
  if (method == "DELETE") {
    return "s3:DeleteObject";
  }
  return "s3:GetObject";
}

}  // namespace

S3Storage::S3Storage(S3Settings settings, EnvLookup env, const util::Clock& clock)
    : m_settings(std::move(settings)),
      m_clock(clock),
      m_credentials(m_settings, std::move(env), clock),
      m_client(net::make_curl_client(net::HttpTimeouts{m_settings.common.connect_timeout_ms,
                                                       m_settings.common.request_timeout_ms})) {
  std::string_view endpoint = m_settings.endpoint;
  m_scheme = m_settings.use_ssl ? "https" : "http";
  for (std::string_view scheme : {"http", "https"}) {
    std::string prefix = std::string(scheme) + "://";
    if (endpoint.starts_with(prefix)) {
      m_scheme = std::string(scheme);
      endpoint.remove_prefix(prefix.size());
    }
  }
  m_endpoint = trim_slashes(endpoint);
  if (m_endpoint.empty()) {
    m_endpoint = "s3." + m_settings.region + ".amazonaws.com";
  }
  m_prefix = trim_slashes(m_settings.key_prefix);
}

S3Storage::~S3Storage() = default;

std::string S3Storage::object_key_at(std::string_view path) const {
  return m_prefix.empty() ? std::string(path) : m_prefix + "/" + std::string(path);
}

std::string S3Storage::object_url_at(std::string_view path) const {
  std::string encoded = encode_path(object_key_at(path));
  if (m_settings.path_style) {
    return m_scheme + "://" + m_endpoint + "/" + net::percent_encode(m_settings.bucket) + "/" +
           encoded;
  }
  return m_scheme + "://" + m_settings.bucket + "." + m_endpoint + "/" + encoded;
}

std::string S3Storage::object_key(const Key& key) const {
  return object_key_at(key.relative_path());
}

std::string S3Storage::object_url(const Key& key) const {
  return object_url_at(key.relative_path());
}

std::string S3Storage::lease_object_key(const Key& key) const {
  return object_key_at(lease_path(key));
}

Failure S3Storage::fail(Failure failure, std::string message) {
  m_error = Error::plain(failure, std::move(message));
  return failure;
}

Failure S3Storage::fail(Failure failure, std::string_view before, std::string_view path,
                        std::string_view after) {
  std::string where = std::string(before) + "s3://" + m_settings.bucket + "/";
  if (!m_prefix.empty()) {
    where += m_prefix + "/";
  }
  m_error = Error::naming(failure, std::move(where), std::string(path), after);
  return failure;
}

Failure S3Storage::read_only(std::string_view method) {
  return fail(Failure::error, "S3: bucket '" + m_settings.bucket + "' is configured read-only; " +
                                  std::string(method) + " not sent");
}

expected<net::HttpResponse, Failure> S3Storage::send(std::string_view method, std::string_view path,
                                                     std::string_view body,
                                                     std::vector<std::string> headers) {
  auto creds = m_credentials.get();
  if (!creds) {
    return unexpected(fail(creds.error().failure, creds.error().message));
  }
  m_used = *creds;
  if (m_used.anonymous() && (method == "PUT" || method == "DELETE")) {
    return unexpected(fail(Failure::access_denied, "S3: cannot " + std::string(method) + " ", path,
                           " without credentials (" + m_used.source +
                               "); provide credentials or make the S3 level read-only"));
  }

  net::HttpRequest request;
  request.method = std::string(method);
  request.url = object_url_at(path);
  request.body = body;
  request.headers = std::move(headers);
  const std::string& sse = m_settings.server_side_encryption;
  if (method == "PUT" && !sse.empty()) {
    request.headers.push_back("x-amz-server-side-encryption: " + sse);
    if (sse == "aws:kms" && !m_settings.sse_kms_key_id.empty()) {
      request.headers.push_back("x-amz-server-side-encryption-aws-kms-key-id: " +
                                m_settings.sse_kms_key_id);
    }
  }
  AwsSigning signing;
  if (!m_used.anonymous()) {
    signing.region = m_settings.region;
    signing.access_key_id = m_used.access_key_id;
    signing.secret_access_key = m_used.secret_access_key;
    signing.session_token = m_used.session_token;
    sign_request(&request, signing, m_clock);
  }

  auto response = m_client->perform(request);
  if (response) {
    return std::move(*response);
  }
  const net::HttpError& e = response.error();
  std::string endpoint = m_scheme + "://" + m_endpoint;
  switch (e.kind) {
    case net::TransportError::timeout:
      return unexpected(fail(Failure::timeout, "S3: " + std::string(method) + " ", path,
                             " at " + endpoint + " timed out (" + e.message + ")"));
    case net::TransportError::cannot_connect:
      return unexpected(fail(Failure::error, "cannot connect to S3 endpoint " + endpoint + " (" +
                                                 e.message +
                                                 ") (check KILN_S3_ENDPOINT / KILN_S3_USE_SSL)"));
    case net::TransportError::response_too_large:
    case net::TransportError::malformed_response:
    case net::TransportError::other:
      break;
  }
  return unexpected(fail(Failure::error, "S3: " + std::string(method) + " ", path,
                         " at " + endpoint + " failed: " + e.message));
}

Failure S3Storage::status_failure(std::string_view method, std::string_view path,
                                  const net::HttpResponse& response) {
  std::string code = aws_xml_value(response.body, "Code").value_or("");
  std::string message = aws_xml_value(response.body, "Message").value_or("");
  std::string endpoint = m_scheme + "://" + m_endpoint;
  // "S3: GET s3://<bucket>/<object> at <endpoint> returned HTTP ...", around the key.
  const std::string before = "S3: " + std::string(method) + " ";
  const std::string what = " at " + endpoint + " returned HTTP " + std::to_string(response.status) +
                           (code.empty() ? "" : " " + code) +
                           (message.empty() ? "" : " (" + message + ")");

  if (code == "NoSuchBucket") {
    return fail(Failure::error, "S3 bucket '" + m_settings.bucket + "' does not exist at " +
                                    endpoint + " (check KILN_S3_BUCKET / KILN_S3_ENDPOINT)");
  }
  auto region = response.header("x-amz-bucket-region");
  if (!region) {
    region = aws_xml_value(response.body, "Region");
  }
  if (code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
      ((response.status == 301 || response.status == 307) && region)) {
    return fail(Failure::error, before, path,
                what + "; the bucket '" + m_settings.bucket + "' is in region " +
                    region.value_or("(unknown)") + ", not " + m_settings.region +
                    " (check KILN_S3_REGION)");
  }
  if (response.status == 401 || response.status == 403) {
    std::string fix;
    if (m_used.anonymous()) {
      fix =
          "the bucket does not allow anonymous access; provide credentials "
          "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a web identity or a shared "
          "credentials file) and do not set no_credentials";
    } else if (code == "InvalidAccessKeyId") {
      fix = "S3 does not know the access key ID " + m_used.access_key_id +
            "; the keys are wrong or belong to another account or endpoint";
    } else if (code == "SignatureDoesNotMatch") {
      fix = "the secret access key does not match the access key ID " + m_used.access_key_id +
            "; check the secret";
    } else if (code == "ExpiredToken" || code == "TokenRefreshRequired" || code == "InvalidToken") {
      fix = "the session token has expired or is invalid; refresh the credentials";
    } else {
      fix = "the identity may lack " + std::string(permission_for(method)) +
            " permission on bucket '" + m_settings.bucket +
            "' (IAM or bucket policy), or the keys or session token are wrong or expired";
    }
    return fail(Failure::access_denied, before, path,
                what + " with credentials from " + m_used.source + ": " + fix);
  }
  return fail(Failure::error, before, path, what);
}

expected<std::string, Failure> S3Storage::get(const Key& key) {
  const std::string path = key.relative_path();
  auto response = send("GET", path);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status == 200) {
    return std::move(response->body);
  }
  if (response->status == 404 &&
      aws_xml_value(response->body, "Code").value_or("NoSuchKey") == "NoSuchKey") {
    return unexpected(Failure::not_found);
  }
  return unexpected(status_failure("GET", path, *response));
}

expected<void, Failure> S3Storage::put(const Key& key, std::string_view value) {
  if (m_settings.common.read_only) {
    return unexpected(read_only("PUT"));
  }
  const std::string path = key.relative_path();
  auto response = send("PUT", path, value);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status >= 200 && response->status < 300) {
    return {};
  }
  return unexpected(status_failure("PUT", path, *response));
}

expected<void, Failure> S3Storage::remove(const Key& key) {
  if (m_settings.common.read_only) {
    return unexpected(read_only("DELETE"));
  }
  return delete_object(key.relative_path());
}

expected<bool, Failure> S3Storage::exists(const Key& key) {
  const std::string path = key.relative_path();
  auto response = send("HEAD", path);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status == 200) {
    return true;
  }
  if (response->status == 404) {
    return false;  // HEAD responses have no body: a missing bucket looks the same
  }
  return unexpected(status_failure("HEAD", path, *response));
}

int64_t S3Storage::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(m_clock.wall().time_since_epoch())
      .count();
}

expected<S3Storage::LeaseBody, Failure> S3Storage::get_lease(std::string_view path) {
  auto response = send("GET", path);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status == 200) {
    return LeaseBody(std::move(response->body));
  }
  if (response->status == 404 &&
      aws_xml_value(response->body, "Code").value_or("NoSuchKey") == "NoSuchKey") {
    return LeaseBody();
  }
  return unexpected(status_failure("GET", path, *response));
}

expected<bool, Failure> S3Storage::create_lease(std::string_view path, std::string_view holder,
                                                std::chrono::milliseconds ttl) {
  const std::string body = std::to_string(now_ms() + ttl.count()) + " " + std::string(holder);
  auto response = send("PUT", path, body, {"If-None-Match: *"});
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status >= 200 && response->status < 300) {
    return true;
  }
  // 412: the object exists; 409: a concurrent conditional write of it is
  // under way (AWS: ConditionalRequestConflict).
  if (response->status == 412 || response->status == 409) {
    return false;
  }
  return unexpected(status_failure("PUT", path, *response));
}

expected<void, Failure> S3Storage::delete_lease(std::string_view path) {
  auto deleted = delete_object(path);
  if (!deleted && deleted.error() == Failure::not_found) {
    return {};  // gone already: what a delete wants
  }
  return deleted;
}

expected<void, Failure> S3Storage::delete_object(std::string_view path) {
  auto response = send("DELETE", path);
  if (!response) {
    return unexpected(response.error());
  }
  if (response->status >= 200 && response->status < 300) {
    return {};
  }
  if (response->status == 404 &&
      aws_xml_value(response->body, "Code").value_or("NoSuchKey") == "NoSuchKey") {
    return unexpected(Failure::not_found);
  }
  return unexpected(status_failure("DELETE", path, *response));
}

expected<bool, Failure> S3Storage::acquire_lease(const Key& key, std::string_view holder,
                                                 std::chrono::milliseconds ttl) {
  if (m_settings.common.read_only) {
    return unexpected(read_only("PUT"));
  }
  const std::string path = lease_path(key);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto created = create_lease(path, holder, ttl);
    if (!created || *created || attempt > 0) {
      return created;
    }
    auto current = get_lease(path);
    if (!current) {
      return unexpected(current.error());
    }
    if (!*current) {
      continue;  // released between the PUT and the GET
    }
    auto lease = parse_lease(**current);
    if (lease && lease->expiry_ms > now_ms()) {
      return lease->holder == holder;  // live: held, unless by this holder
    }
    auto deleted = delete_lease(path);  // expired, or not a lease
    if (!deleted) {
      return unexpected(deleted.error());
    }
  }
  return false;
}

expected<void, Failure> S3Storage::release_lease(const Key& key, std::string_view holder) {
  if (m_settings.common.read_only) {
    return unexpected(read_only("DELETE"));
  }
  const std::string path = lease_path(key);
  auto current = get_lease(path);
  if (!current) {
    return unexpected(current.error());
  }
  if (!*current) {
    return {};
  }
  auto lease = parse_lease(**current);
  if (!lease || lease->holder != holder) {
    return {};  // another holder's (its own ended and was taken again)
  }
  return delete_lease(path);
}

expected<bool, Failure> S3Storage::lease_held(const Key& key) {
  auto current = get_lease(lease_path(key));
  if (!current) {
    return unexpected(current.error());
  }
  if (!*current) {
    return false;
  }
  auto lease = parse_lease(**current);
  return lease && lease->expiry_ms > now_ms();
}

}  // namespace kiln::storage
