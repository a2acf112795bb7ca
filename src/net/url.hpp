#pragma once

#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::net {

// What is wrong with a URL that Url::parse rejects.
enum class UrlError {
  no_scheme,      // no "scheme://"
  bad_scheme,     // a scheme with characters other than letters, digits, + - .
  bad_ipv6_host,  // "[" without "]", or text other than ":port" after "]"
  bad_port,       // empty, not digits, 0 or above 65535
  bad_character,  // a control character anywhere, or a space in the host, path or query
};

// A sentence fragment naming the error ("the port is not a number from 1 to 65535").
std::string_view describe(UrlError error);

// How Url::parse finds the end of the user info.
enum class UserinfoRule {
  // RFC 3986: the authority ends at the first '/', '?' or '#'; the user info
  // is what comes before its last '@'.
  standard,
  // Redis' rule for TCP (redis-rs, ccache): the user info ends at the last
  // '@', so a password may hold '@', ':', '/', '?' and '#' unescaped (an '@'
  // in the query must be written %40). No fragment.
  lenient_password,
  // Redis' rule for a Unix socket: the user info ends at the first "@/",
  // before the socket's path (which may hold '@'). No fragment.
  lenient_socket,
};

// A URL split into its parts, as written: scheme://[userinfo@]host[:port][path][?query][#fragment].
// Nothing is percent-decoded (see percent.hpp); the fragment is dropped.
struct Url {
  std::string scheme;    // lowercase
  std::string userinfo;  // "user:password" as written, "" when absent
  bool has_userinfo = false;
  std::string host;   // as written, IPv6 literals without their brackets; may be empty
  int port = 0;       // 0: none given
  std::string path;   // "" or starting with '/'
  std::string query;  // after '?', without it
  bool has_query = false;

  // Parses `text`. The host may be empty (unix:///path), the caller checks
  // what its scheme needs.
  static expected<Url, UrlError> parse(std::string_view text,
                                       UserinfoRule rule = UserinfoRule::standard);

  bool ipv6() const { return host.find(':') != std::string::npos; }
  // The host for a URI or a Host header: IPv6 literals in brackets.
  std::string host_for_uri() const;
  // The port, or `fallback` when none was given.
  int port_or(int fallback) const { return port != 0 ? port : fallback; }
  // "host:port" (IPv6 in brackets), with `fallback` for a missing port.
  std::string host_port(int fallback) const;
  // The request target: the path ("/" when empty) and "?query" if any.
  std::string target() const;
};

}  // namespace kiln::net
