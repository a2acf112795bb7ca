#include "kiln/storage/remote/redis_url.hpp"

#include <charconv>

#include "kiln/net/percent.hpp"
#include "kiln/net/url.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

bool parse_int(std::string_view text, int min, int max, int* out) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    return false;
  }
  *out = value;
  return true;
}

expected<std::string, std::string> decode(std::string_view text, std::string_view what) {
  auto decoded = net::percent_decode(text);
  if (!decoded) {
    return unexpected("bad %-escape in the " + std::string(what) + " of the Redis URL");
  }
  return std::move(*decoded);
}

// Applies "db=N&user=U&password=P" to `out`.
expected<void, std::string> parse_query(std::string_view query, RedisEndpoint* out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) {
      continue;
    }
    size_t eq = item.find('=');
    std::string_view name = item.substr(0, eq);
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    auto value = decode(raw, name);
    if (!value) {
      return unexpected(value.error());
    }
    if (name == "db") {
      if (!parse_int(*value, 0, 1 << 30, &out->db)) {
        return unexpected("bad database number '" + *value + "' in the Redis URL");
      }
    } else if (name == "user" || name == "username") {
      out->user = *value;
    } else if (name == "password" || name == "pass") {
      out->password = *value;
    } else {
      return unexpected("unknown parameter '" + std::string(name) +
                        "' in the Redis URL (known: db, user, password)");
    }
  }
  return {};
}

// Applies "user:password" (either part may be empty) to `out`.
expected<void, std::string> parse_userinfo(std::string_view userinfo, RedisEndpoint* out) {
  size_t colon = userinfo.find(':');
  auto user = decode(userinfo.substr(0, colon), "user");
  if (!user) {
    return unexpected(user.error());
  }
  out->user = *user;
  if (colon != std::string_view::npos) {
    auto password = decode(userinfo.substr(colon + 1), "password");
    if (!password) {
      return unexpected(password.error());
    }
    out->password = *password;
  }
  return {};
}

}  // namespace

std::string RedisEndpoint::display() const {
  if (!socket_path.empty()) {
    return "unix:" + socket_path;
  }
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

expected<RedisEndpoint, std::string> parse_redis_url(std::string_view text) {
  // The scheme decides where the user info ends (url.hpp, UserinfoRule).
  const std::string scheme = util::lowercase(text.substr(0, text.find("://")));
  auto url = net::Url::parse(text, scheme == "unix" || scheme == "redis+unix"
                                       ? net::UserinfoRule::lenient_socket
                                       : net::UserinfoRule::lenient_password);
  if (!url) {
    switch (url.error()) {
      case net::UrlError::no_scheme:
      case net::UrlError::bad_scheme:
        return unexpected(
            std::string("the Redis URL has no scheme (want redis://host[:port][/db])"));
      case net::UrlError::bad_ipv6_host:
        return unexpected(
            std::string("unterminated [IPv6 address], or text after it, in the Redis URL"));
      case net::UrlError::bad_character:
        return unexpected(std::string(
            "the Redis URL holds a control character, or a space outside the password"));
      case net::UrlError::bad_port:
        return unexpected(std::string("bad port in the Redis URL (a number from 1 to 65535)"));
    }
  }
  bool unix_socket = url->scheme == "unix" || url->scheme == "redis+unix";
  if (url->scheme == "rediss") {
    return unexpected(std::string("rediss:// (Redis over TLS) is not supported; use redis://"));
  }
  if (url->scheme != "redis" && !unix_socket) {
    return unexpected("unsupported scheme '" + url->scheme +
                      "://' in the Redis URL (want redis://)");
  }

  RedisEndpoint out;
  if (url->has_userinfo) {
    auto status = parse_userinfo(url->userinfo, &out);
    if (!status) {
      return unexpected(status.error());
    }
  }
  if (unix_socket) {
    if (!url->host.empty() || url->port != 0 || !url->path.starts_with('/')) {
      return unexpected(std::string("the Redis socket URL needs an absolute path (unix:///path)"));
    }
    out.socket_path = url->path;
  } else {
    if (url->host.empty()) {
      return unexpected(std::string("no host in the Redis URL (redis://host[:port][/db])"));
    }
    out.host = url->host;
    out.port = url->port_or(out.port);
    std::string_view path = url->path;
    if (path.size() > 1 && !parse_int(path.substr(1), 0, 1 << 30, &out.db)) {
      return unexpected("bad database number '" + std::string(path.substr(1)) +
                        "' in the Redis URL (redis://host[:port]/<number>)");
    }
  }
  auto status = parse_query(url->query, &out);
  if (!status) {
    return unexpected(status.error());
  }
  return out;
}

}  // namespace kiln::storage
