#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::net {

// How a request failed before a complete response came back.
enum class TransportError {
  timeout,             // the connect or the whole request took longer than allowed
  cannot_connect,      // name not resolved, connection refused, TLS handshake failed
  response_too_large,  // the body or the headers passed the client's HttpLimits
  malformed_response,  // not HTTP/1.x: bad status line, header, chunk size, Content-Length
  other,               // anything else (connection reset mid-response, ...)
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

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE, or any other verb
  std::string url;
  std::vector<std::string> headers;  // "Name: value"; "Name:" sends nothing
  // The request body (PUT, POST); must stay valid until perform() returns. A
  // body without a Content-Type header is sent as application/octet-stream.
  std::string_view body;
  // When positive, the whole request's time limit instead of the client's
  // HttpTimeouts::total_ms (a request carrying its own deadline).
  int total_ms = 0;
  // https (libcurl transport only): when not empty, trust exactly the
  // certificates in this PEM text instead of the system's store, e.g. the
  // self-signed certificate a scheduler vouches for. Host names are still
  // verified against the certificate.
  std::string_view ca_pem;
};

struct HttpTimeouts {
  int connect_ms = 1000;  // TCP and TLS connect
  int total_ms = 5000;    // the whole request, connect included
};

// What a response may hold; more fails the request with response_too_large
// (checked as the bytes arrive, and against Content-Length before the body is read).
struct HttpLimits {
  uint64_t max_body_bytes = uint64_t{1} << 30;  // 1 GiB
  size_t max_header_line = 64 * 1024;           // status, header, chunk-size and trailer lines
  int max_headers = 200;  // header and trailer fields of one exchange, 1xx responses included
};

// An HTTP/1.1 client. Two transports implement it, each made by its factory
// (curl_client.hpp: libcurl, http and https, for daemons and S3;
// plain_client.hpp: POSIX sockets, http:// only, for libkiln-http.so).
// Consecutive requests to the same server share a kept-alive connection.
// Redirects are not followed. Thread-compatible, not thread-safe: use one
// client per thread.
class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Sends the request and waits for the whole response. Any HTTP status is a
  // response; only transport failures are errors.
  virtual expected<HttpResponse, HttpError> perform(const HttpRequest& request) = 0;

  // Connections opened so far (a reused connection does not count).
  virtual int64_t connections_opened() const = 0;

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
};

// Whether the request carries a body (PUT, POST, or any non-empty body).
bool sends_body(const HttpRequest& request);

// Whether `headers` ("Name: value") has one named `name` (lowercase).
bool has_header(const std::vector<std::string>& headers, std::string_view name);

// The header lines a transport sends for `request`: the caller's, plus
// Content-Type: application/octet-stream for a body without one (not curl's
// form default).
std::vector<std::string> header_lines_to_send(const HttpRequest& request);

}  // namespace kiln::net
