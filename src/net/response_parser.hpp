#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/net/http_client.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::net {

// Why a response was rejected.
enum class ResponseError {
  malformed_status_line,   // not "HTTP/1.x NNN[ reason]" with NNN from 100 to 999
  malformed_header,        // a header line without a colon or a name
  header_line_too_long,    // a line longer than HttpLimits::max_header_line
  too_many_headers,        // more fields than HttpLimits::max_headers
  invalid_content_length,  // not a decimal number, too large for 64 bits, or two that differ
  malformed_chunk,         // a chunk size that is not 1 to 15 hex digits, or no CRLF after a chunk
  body_too_large,          // a body (announced or received) over HttpLimits::max_body_bytes
  truncated,               // the connection closed before the response was complete
};

// A sentence fragment naming the error, for messages.
std::string_view describe(ResponseError error);

// Parses one HTTP/1.x response as its bytes arrive, in any pieces: status
// line, headers, then a body delimited by Content-Length, chunked transfer
// coding or the end of the connection. Interim 1xx responses (but 101) are
// skipped. Lines may end in CRLF or a bare LF. Everything untrusted is
// bounded by `limits`; the body is reserved for a Content-Length within them.
// Thread-compatible.
class ResponseParser {
 public:
  // `head_request`: the response to a HEAD has no body whatever its headers say.
  ResponseParser(bool head_request, const HttpLimits& limits);

  // Parses the next bytes. Returns how many belong to this response: all of
  // them until it is complete, then fewer when bytes follow it.
  expected<size_t, ResponseError> feed(std::string_view data);

  // The connection has closed: completes a body delimited by the close,
  // fails with `truncated` for any other incomplete response.
  expected<void, ResponseError> finish();

  bool complete() const { return m_state == State::done; }
  // Whether any byte has been fed.
  bool started() const { return m_started; }
  // Whether the connection may carry another request (once complete).
  bool keep_alive() const { return m_keep_alive; }
  // Whether the headers of the final response have been read.
  bool headers_complete() const { return m_headers_complete; }
  // The Content-Length of the body, 0 without one (for messages).
  uint64_t body_expected() const { return m_content_length; }

  // The response parsed so far (complete once complete()).
  HttpResponse& response() { return m_response; }

 private:
  enum class State {
    status_line,
    headers,
    body_length,
    chunk_size,
    chunk_data,
    chunk_end,
    trailers,
    until_close,
    done,
  };

  expected<void, ResponseError> on_line(std::string_view line);
  expected<void, ResponseError> on_status_line(std::string_view line);
  expected<void, ResponseError> on_header_line(std::string_view line);
  expected<void, ResponseError> on_end_of_headers();
  expected<void, ResponseError> on_chunk_size(std::string_view line);
  // Appends up to `m_remaining` body bytes of `data`; returns how many.
  size_t take_body(std::string_view data);

  bool m_head_request;
  HttpLimits m_limits;
  State m_state = State::status_line;
  HttpResponse m_response;
  std::string m_line;  // a line received in pieces
  bool m_started = false;
  bool m_http10 = false;
  bool m_keep_alive = false;
  bool m_headers_complete = false;
  int m_fields = 0;  // header and trailer fields so far
  uint64_t m_content_length = 0;
  uint64_t m_remaining = 0;  // of the Content-Length body or the current chunk
};

}  // namespace kiln::net
