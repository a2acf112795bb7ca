#include "kiln/net/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "kiln/util/string.hpp"

namespace kiln::net {

namespace {

bool valid_scheme(std::string_view scheme) {
  if (scheme.empty() || !std::isalpha(static_cast<unsigned char>(scheme[0]))) {
    return false;
  }
  return std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

expected<int, UrlError> parse_port(std::string_view text) {
  int port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port < 1 ||
      port > 65535 || !std::isdigit(static_cast<unsigned char>(text[0]))) {
    return unexpected(UrlError::bad_port);
  }
  return port;
}

}  // namespace

std::string_view describe(UrlError error) {
  switch (error) {
    case UrlError::no_scheme:
      return "the URL has no scheme (scheme://...)";
    case UrlError::bad_scheme:
      return "the URL's scheme has characters other than letters, digits, '+', '-' and '.'";
    case UrlError::bad_ipv6_host:
      return "the URL's [IPv6 address] is unterminated or followed by more than a port";
    case UrlError::bad_port:
      return "the URL's port is not a number from 1 to 65535";
    case UrlError::bad_character:
      return "the URL holds a control character, or a space outside the user info";
  }
  return "malformed URL";
}

expected<Url, UrlError> Url::parse(std::string_view text, UserinfoRule rule) {
  auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    return unexpected(UrlError::no_scheme);
  }
  Url url;
  if (!valid_scheme(text.substr(0, scheme_end))) {
    return unexpected(UrlError::bad_scheme);
  }
  url.scheme = util::lowercase(text.substr(0, scheme_end));
  std::string_view rest = text.substr(scheme_end + 3);

  // The user info.
  size_t at = std::string_view::npos;
  if (rule == UserinfoRule::lenient_password) {
    at = rest.rfind('@');
  } else if (rule == UserinfoRule::lenient_socket) {
    at = rest.find("@/");
  } else {
    rest = rest.substr(0, rest.find('#'));
    at = rest.substr(0, rest.find_first_of("/?")).rfind('@');
  }
  if (at != std::string_view::npos) {
    url.userinfo = rest.substr(0, at);
    url.has_userinfo = true;
    rest.remove_prefix(at + 1);
  }

  // host[:port], up to the path or the query.
  size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  std::string_view port;
  bool has_port = false;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return unexpected(UrlError::bad_ipv6_host);
    }
    url.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return unexpected(UrlError::bad_ipv6_host);
    }
    has_port = !after.empty();
    port = has_port ? after.substr(1) : after;
  } else {
    auto colon = authority.find(':');
    url.host = authority.substr(0, colon);
    has_port = colon != std::string_view::npos;
    port = has_port ? authority.substr(colon + 1) : std::string_view();
  }
  if (has_port) {
    auto number = parse_port(port);
    if (!number) {
      return unexpected(number.error());
    }
    url.port = *number;
  }

  auto question = rest.find('?');
  url.path = rest.substr(0, question);
  if (question != std::string_view::npos) {
    url.query = rest.substr(question + 1);
    url.has_query = true;
  }
  // What goes on a request line or into a Host header must not end it (CR,
  // LF) or split it (a space): a URL from elsewhere could inject headers.
  auto has = [](std::string_view part, bool space_too) {
    return std::any_of(part.begin(), part.end(), [&](char c) {
      auto b = static_cast<unsigned char>(c);
      return b < 0x20 || b == 0x7f || (space_too && b == ' ');
    });
  };
  if (has(url.userinfo, false) || has(url.host, true) || has(url.path, true) ||
      has(url.query, true)) {
    return unexpected(UrlError::bad_character);
  }
  return url;
}

std::string Url::host_for_uri() const {
  return ipv6() ? "[" + host + "]" : host;
}

std::string Url::host_port(int fallback) const {
  return host_for_uri() + ":" + std::to_string(port_or(fallback));
}

std::string Url::target() const {
  std::string out = path.empty() ? "/" : path;
  if (has_query) {
    out += "?" + query;
  }
  return out;
}

}  // namespace kiln::net
