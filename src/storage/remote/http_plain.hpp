#pragma once
// The parts of the socket transport of HttpClient (http_client_plain.cpp,
// libkiln-http.so) that do not depend on one exchange: URLs and request heads
// (http_plain_request.cpp), timed connects and name lookups
// (http_plain_socket.cpp). Internal to kiln_remote_plain.

#include <chrono>
#include <string>
#include <string_view>

#include "kiln/storage/remote/http_client.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage::plain {

using Clock = std::chrono::steady_clock;

// The parts of an http:// URL the transport needs.
struct Target {
  std::string host;         // for getaddrinfo: an IPv6 literal without brackets
  std::string host_port;    // "host:port" (brackets kept), for messages and reuse
  std::string host_header;  // the Host header: the host as written, ":port" unless 80
  std::string port;
  std::string path;      // "/path?query", what the request line asks for
  std::string userinfo;  // "user:password" (still percent-encoded) or ""
};

// The value of a hex digit (either case), -1 for any other character.
int hex_value(char c);

// http://[user:password@]host[:port][/path][?query][#fragment]; the host is a
// name, an IPv4 literal or an IPv6 literal in brackets. https:// and other
// schemes are errors that say which plugin serves them.
expected<Target, HttpError> parse_url(std::string_view url);

// The request line and headers, up to the empty line.
expected<std::string, HttpError> request_head(const HttpRequest& request, const Target& target);

// Milliseconds left until `deadline`, 0 once it has passed.
int ms_until(Clock::time_point deadline);

// Waits until `fd` is ready for `events` or the deadline passes. Returns
// false on timeout; errors and hang-ups count as ready (the next call reports them).
bool wait_for(int fd, short events, Clock::time_point deadline);

std::string errno_text(int error);

// Opens a non-blocking TCP connection (TCP_NODELAY) to the target, trying
// every address its name resolves to; the name lookup and the connects end at
// `connect_deadline` (a timeout).
expected<int, HttpError> connect_to(const Target& target, Clock::time_point connect_deadline,
                                    int connect_ms);

}  // namespace kiln::storage::plain
