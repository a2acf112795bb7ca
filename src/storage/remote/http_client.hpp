#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::storage {

// How a request failed before any HTTP status came back.
enum class TransportError {
  timeout,         // the connect or the whole request took longer than allowed
  cannot_connect,  // name not resolved, connection refused, TLS handshake failed
  other,           // anything else (connection reset mid-response, ...)
};

struct HttpError {
  TransportError kind = TransportError::other;
  std::string message;  // the transport's description (curl's or the socket client's), for the user
};

struct HttpResponse {
  long status = 0;
  std::string body;  // empty for HEAD
  // Headers of the final response (not of a 100 Continue), names in lowercase,
  // values trimmed, in the order received.
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of the first header named `name` (lowercase), if any.
  std::optional<std::string> header(std::string_view name) const;
};

// AWS Signature Version 4 signing of one request. HttpClient signs it itself
// (see sign_aws_v4) rather than with curl's CURLOPT_AWS_SIGV4, which in curl
// 7.88 orders the signed headers wrongly when one header name is a prefix of
// another (x-amz-server-side-encryption and ...-aws-kms-key-id) and signs
// headers it does not send ("Expect:").
struct AwsSigning {
  std::string region;
  std::string service = "s3";
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: long-term keys
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE, or any other verb
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // The request body (PUT, POST); must stay valid until perform() returns. A
  // body without a Content-Type header is sent as application/octet-stream.
  std::string_view body;
  // When set, the request is signed: every header above, Host, x-amz-date,
  // x-amz-content-sha256 (the SHA-256 of the body unless given) and
  // x-amz-security-token (with a session token); Host comes from the URL and
  // must not be given. The URL's path and query must be percent-encoded
  // already (see url_encode).
  const AwsSigning* aws = nullptr;
};

struct HttpTimeouts {
  int connect_ms = 1000;  // TCP and TLS connect
  int total_ms = 5000;    // the whole request, connect included
};

// A small HTTP client with two transports behind this one declaration, each in
// its own library: http_client.cpp wraps libcurl (one easy handle reused for
// every request; http, https), http_client_plain.cpp speaks HTTP/1.1 over
// POSIX sockets (http:// only; an https URL fails with cannot_connect).
// Consecutive requests to the same server share a kept-alive connection.
// Redirects are not followed. Thread-compatible, not thread-safe: use one
// client per thread.
class HttpClient {
 public:
  explicit HttpClient(HttpTimeouts timeouts = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void set_timeouts(HttpTimeouts timeouts) { m_timeouts = timeouts; }
  const HttpTimeouts& timeouts() const { return m_timeouts; }

  // Sends the request and waits for the whole response. Any HTTP status is a
  // response; only transport failures are errors.
  expected<HttpResponse, HttpError> perform(const HttpRequest& request);

  expected<HttpResponse, HttpError> get(const std::string& url,
                                        std::vector<std::string> headers = {});
  expected<HttpResponse, HttpError> head(const std::string& url,
                                         std::vector<std::string> headers = {});
  expected<HttpResponse, HttpError> put(const std::string& url, std::string_view body,
                                        std::vector<std::string> headers = {});
  expected<HttpResponse, HttpError> post(const std::string& url, std::string_view body,
                                         std::vector<std::string> headers = {});
  expected<HttpResponse, HttpError> del(const std::string& url,
                                        std::vector<std::string> headers = {});

  // Connections opened so far (a reused connection does not count).
  int64_t connections_opened() const { return m_connections_opened; }

  // Percent-encodes everything but the unreserved characters A-Z a-z 0-9 - . _ ~
  // (for query strings, form bodies and URL path segments).
  static std::string url_encode(std::string_view s);

 private:
  // The transport's state, owned: CURL* (http_client.cpp) or the kept-alive
  // connection (http_client_plain.cpp).
  void* m_transport = nullptr;
  HttpTimeouts m_timeouts;
  int64_t m_connections_opened = 0;
};

// The headers that sign a request with AWS Signature Version 4 at
// `unix_time` (seconds): Host, x-amz-date, x-amz-content-sha256,
// x-amz-security-token (with a session token) and Authorization. Every
// header of `headers` ("Name: value", empty values skipped) is signed as
// well and must be sent unchanged. `payload_hash` is the lowercase hex
// SHA-256 of the body, or "UNSIGNED-PAYLOAD". The path is signed as it is
// in the URL (S3's rule: encoded once), the query with its parameters sorted.
std::vector<std::string> sign_aws_v4(const AwsSigning& aws, std::string_view method,
                                     std::string_view url, const std::vector<std::string>& headers,
                                     std::string_view payload_hash, int64_t unix_time);

// Shared by the two transports (http_common.cpp); not for other callers.
namespace http_detail {

// Whether the request carries a body (PUT, POST, or any non-empty body).
bool sends_body(const HttpRequest& request);

// Whether `headers` ("Name: value") has one named `name` (lowercase).
bool has_header(const std::vector<std::string>& headers, std::string_view name);

// The caller's headers plus Content-Type: application/octet-stream for a body
// without one and, when request.aws is set, the SigV4 headers (Host among
// them) in place of a given x-amz-content-sha256.
std::vector<std::string> request_header_lines(const HttpRequest& request);

// Adds the header line "Name: value" (no CRLF) to response->headers, name
// lowercased and value trimmed, and reserves the body for a Content-Length up
// to 1 GiB. Returns false for a line without a colon (nothing added).
bool add_response_header(HttpResponse* response, std::string_view line);

}  // namespace http_detail

}  // namespace kiln::storage
