// URLs and request heads of the socket transport (http_plain.hpp).
#include "kiln/storage/remote/http_plain.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "kiln/util/string.hpp"

namespace kiln::storage::plain {

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string base64(std::string_view s) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(s[i])) << 16;
    if (i + 1 < s.size()) {
      n |= static_cast<uint32_t>(static_cast<unsigned char>(s[i + 1])) << 8;
    }
    if (i + 2 < s.size()) {
      n |= static_cast<unsigned char>(s[i + 2]);
    }
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += i + 1 < s.size() ? k_alphabet[(n >> 6) & 63] : '=';
    out += i + 2 < s.size() ? k_alphabet[n & 63] : '=';
  }
  return out;
}

}  // namespace

expected<Target, HttpError> parse_url(std::string_view url) {
  auto scheme_end = url.find("://");
  std::string scheme = util::lowercase(url.substr(0, scheme_end));
  if (scheme_end == std::string_view::npos || scheme != "http") {
    if (scheme == "https") {
      return unexpected(HttpError{TransportError::cannot_connect,
                                  "https:// needs libkiln-remote.so (libcurl); this client "
                                  "(libkiln-http.so) speaks plain http:// only"});
    }
    return unexpected(HttpError{TransportError::other, "unsupported URL (only http://): " +
                                                           std::string(url.substr(0, 200))});
  }
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('#'));
  size_t path_start = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, path_start);
  Target t;
  if (path_start != std::string_view::npos) {
    t.path = rest.substr(path_start);
  }
  if (t.path.empty() || t.path[0] == '?') {
    t.path.insert(0, "/");
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    t.userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
  }
  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return unexpected(HttpError{TransportError::other, "malformed IPv6 host in URL"});
    }
    host = authority.substr(0, close + 1);
    t.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return unexpected(HttpError{TransportError::other, "malformed host in URL"});
    }
    port = after.empty() ? "" : after.substr(1);
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    t.host = host;
    port = colon == std::string_view::npos ? "" : authority.substr(colon + 1);
  }
  if (t.host.empty()) {
    return unexpected(HttpError{TransportError::other, "no host in URL"});
  }
  int port_number = 80;
  if (!port.empty()) {
    auto n = util::parse_int(port);
    bool digits = std::all_of(port.begin(), port.end(),
                              [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!n || !digits || *n < 1 || *n > 65535) {
      return unexpected(HttpError{TransportError::other,
                                  "invalid port in URL: " + std::string(port.substr(0, 20))});
    }
    port_number = static_cast<int>(*n);
  }
  t.port = std::to_string(port_number);
  t.host_port = std::string(host) + ":" + t.port;
  t.host_header = port_number == 80 ? std::string(host) : t.host_port;
  return t;
}

expected<std::string, HttpError> request_head(const HttpRequest& request, const Target& target) {
  std::vector<std::string> lines = http_detail::request_header_lines(request);
  std::string head = request.method + " " + target.path + " HTTP/1.1\r\n";
  if (!http_detail::has_header(lines, "host")) {
    head += "Host: " + target.host_header + "\r\n";
  }
  if (!http_detail::has_header(lines, "user-agent")) {
    head += "User-Agent: kiln\r\n";
  }
  if (!target.userinfo.empty() && !http_detail::has_header(lines, "authorization")) {
    auto colon = target.userinfo.find(':');
    std::string credentials = percent_decode(target.userinfo.substr(0, colon));
    credentials += ":";
    if (colon != std::string::npos) {
      credentials += percent_decode(target.userinfo.substr(colon + 1));
    }
    head += "Authorization: Basic " + base64(credentials) + "\r\n";
  }
  for (const auto& line : lines) {
    if (line.find_first_of("\r\n") != std::string::npos) {
      return unexpected(HttpError{TransportError::other, "a request header has a line break"});
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    // As with curl, "Name:" sends nothing; Content-Length is ours to set.
    std::string_view value = util::trim(std::string_view(line).substr(colon + 1));
    std::string name = util::lowercase(util::trim(std::string_view(line).substr(0, colon)));
    if (value.empty() || name == "content-length" || name == "transfer-encoding") {
      continue;
    }
    head += line + "\r\n";
  }
  if (http_detail::sends_body(request)) {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace kiln::storage::plain
