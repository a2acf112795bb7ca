#include "kiln/net/response_parser.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <optional>

#include "kiln/util/hex.hpp"
#include "kiln/util/string.hpp"

namespace kiln::net {

namespace {

// The longest chunk size accepted: 15 hex digits cannot overflow 64 bits.
constexpr size_t k_max_chunk_size_digits = 15;

// Whether the comma-separated header value has `token` (lowercase).
bool has_token(std::string_view value, std::string_view token) {
  for (const auto& part : util::split(value, ',')) {
    if (util::lowercase(util::trim(part)) == token) {
      return true;
    }
  }
  return false;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// A Content-Length value: decimal digits only, within 64 bits.
std::optional<uint64_t> parse_length(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), is_digit)) {
    return std::nullopt;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::string_view describe(ResponseError error) {
  switch (error) {
    case ResponseError::malformed_status_line:
      return "malformed status line";
    case ResponseError::malformed_header:
      return "malformed header line";
    case ResponseError::header_line_too_long:
      return "header line too long";
    case ResponseError::too_many_headers:
      return "too many header lines";
    case ResponseError::invalid_content_length:
      return "invalid Content-Length";
    case ResponseError::malformed_chunk:
      return "malformed chunk size or chunk end";
    case ResponseError::body_too_large:
      return "body larger than the client accepts";
    case ResponseError::truncated:
      return "response truncated";
  }
  return "malformed response";
}

ResponseParser::ResponseParser(bool head_request, const HttpLimits& limits)
    : m_head_request(head_request), m_limits(limits) {}

expected<size_t, ResponseError> ResponseParser::feed(std::string_view data) {
  size_t used = 0;
  m_started = m_started || !data.empty();
  while (used < data.size() && m_state != State::done) {
    std::string_view rest = data.substr(used);
    switch (m_state) {
      case State::body_length:
      case State::chunk_data: {
        used += take_body(rest);
        if (m_remaining == 0) {
          m_state = m_state == State::body_length ? State::done : State::chunk_end;
        }
        break;
      }
      case State::until_close: {
        if (m_response.body.size() + rest.size() > m_limits.max_body_bytes) {
          return unexpected(ResponseError::body_too_large);
        }
        m_response.body.append(rest);
        used = data.size();
        break;
      }
      default: {
        // A line, maybe completing one received in pieces.
        const void* newline = std::memchr(rest.data(), '\n', rest.size());
        size_t length = newline
                            ? static_cast<size_t>(static_cast<const char*>(newline) - rest.data())
                            : rest.size();
        // The limit is on the line's text: its CR (or a partial CRLF) is allowed on top.
        if (m_line.size() + length > m_limits.max_header_line + 1) {
          return unexpected(ResponseError::header_line_too_long);
        }
        if (!newline) {
          m_line.append(rest);
          used = data.size();
          break;
        }
        used += length + 1;
        std::string_view line = rest.substr(0, length);
        if (!m_line.empty()) {
          m_line.append(line);
          line = m_line;
        }
        if (line.ends_with('\r')) {
          line.remove_suffix(1);
        }
        auto done = on_line(line);
        m_line.clear();
        if (!done) {
          return unexpected(done.error());
        }
        break;
      }
    }
  }
  return used;
}

expected<void, ResponseError> ResponseParser::finish() {
  if (m_state == State::until_close) {
    m_state = State::done;
  }
  if (m_state != State::done) {
    return unexpected(ResponseError::truncated);
  }
  return {};
}

size_t ResponseParser::take_body(std::string_view data) {
  size_t take = static_cast<size_t>(std::min<uint64_t>(m_remaining, data.size()));
  m_response.body.append(data.substr(0, take));
  m_remaining -= take;
  return take;
}

expected<void, ResponseError> ResponseParser::on_line(std::string_view line) {
  switch (m_state) {
    case State::status_line:
      return on_status_line(line);
    case State::headers:
      return line.empty() ? on_end_of_headers() : on_header_line(line);
    case State::chunk_size:
      return on_chunk_size(line);
    case State::chunk_end:
      if (!line.empty()) {
        return unexpected(ResponseError::malformed_chunk);
      }
      m_state = State::chunk_size;
      return {};
    case State::trailers:
      if (line.empty()) {
        m_state = State::done;
      } else if (++m_fields > m_limits.max_headers) {
        return unexpected(ResponseError::too_many_headers);
      }
      return {};  // trailer fields are not kept
    default:
      return {};  // not reached: the other states take bytes, not lines
  }
}

expected<void, ResponseError> ResponseParser::on_status_line(std::string_view s) {
  auto digit = [&](size_t i) { return is_digit(s[i]); };
  if (s.size() < 12 || !s.starts_with("HTTP/1.") || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
      !digit(9) || !digit(10) || !digit(11) || (s.size() > 12 && s[12] != ' ')) {
    return unexpected(ResponseError::malformed_status_line);
  }
  long status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
  if (status < 100) {
    return unexpected(ResponseError::malformed_status_line);
  }
  m_http10 = s[7] == '0';
  m_response.status = status;
  m_response.headers.clear();
  m_response.body.clear();
  m_state = State::headers;
  return {};
}

expected<void, ResponseError> ResponseParser::on_header_line(std::string_view line) {
  if (++m_fields > m_limits.max_headers) {
    return unexpected(ResponseError::too_many_headers);
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos || util::trim(line.substr(0, colon)).empty()) {
    return unexpected(ResponseError::malformed_header);
  }
  m_response.headers.emplace_back(util::lowercase(util::trim(line.substr(0, colon))),
                                  std::string(util::trim(line.substr(colon + 1))));
  return {};
}

expected<void, ResponseError> ResponseParser::on_end_of_headers() {
  long status = m_response.status;
  if (status >= 100 && status < 200 && status != 101) {
    m_state = State::status_line;  // 100 Continue, 103 Early Hints: the final response follows
    return {};
  }
  m_headers_complete = true;
  auto connection = m_response.header("connection");
  m_keep_alive = connection ? !has_token(*connection, "close") &&
                                  (!m_http10 || has_token(*connection, "keep-alive"))
                            : !m_http10;
  if (m_head_request || status < 200 || status == 204 || status == 304) {
    // No body; a 101 leaves the connection to another protocol.
    m_keep_alive = m_keep_alive && status != 101;
    m_state = State::done;
    return {};
  }
  if (auto te = m_response.header("transfer-encoding")) {
    if (has_token(*te, "chunked")) {
      m_state = State::chunk_size;
    } else {
      m_keep_alive = false;
      m_state = State::until_close;
    }
    return {};
  }
  std::optional<uint64_t> length;
  for (const auto& [name, value] : m_response.headers) {
    if (name != "content-length") {
      continue;
    }
    auto parsed = parse_length(value);
    if (!parsed || (length && *length != *parsed)) {
      return unexpected(ResponseError::invalid_content_length);
    }
    length = parsed;
  }
  if (!length) {
    m_keep_alive = false;
    m_state = State::until_close;
    return {};
  }
  if (*length > m_limits.max_body_bytes) {
    return unexpected(ResponseError::body_too_large);
  }
  // The body then arrives into one buffer instead of a doubling one.
  m_response.body.reserve(static_cast<size_t>(*length));
  m_content_length = *length;
  m_remaining = *length;
  m_state = *length == 0 ? State::done : State::body_length;
  return {};
}

expected<void, ResponseError> ResponseParser::on_chunk_size(std::string_view line) {
  std::string_view text = util::trim(line.substr(0, line.find(';')));
  if (text.empty() || text.size() > k_max_chunk_size_digits) {
    return unexpected(ResponseError::malformed_chunk);
  }
  uint64_t size = 0;
  for (char c : text) {
    int digit = util::hex_value(c);
    if (digit < 0) {
      return unexpected(ResponseError::malformed_chunk);
    }
    size = size * 16 + static_cast<uint64_t>(digit);
  }
  if (size == 0) {
    m_state = State::trailers;
    return {};
  }
  if (size > m_limits.max_body_bytes -
                 std::min<uint64_t>(m_response.body.size(), m_limits.max_body_bytes)) {
    return unexpected(ResponseError::body_too_large);
  }
  m_remaining = size;
  m_state = State::chunk_data;
  return {};
}

}  // namespace kiln::net
