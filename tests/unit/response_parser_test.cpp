#include "kiln/net/response_parser.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::net {
namespace {

struct Parsed {
  expected<void, ResponseError> result;
  HttpResponse response;
  bool keep_alive = false;
  size_t used = 0;
};

// Feeds `bytes` in pieces of `piece` bytes, then (unless complete) the close.
Parsed parse(std::string_view bytes, HttpLimits limits = {}, size_t piece = 0,
             bool head_request = false) {
  ResponseParser parser(head_request, limits);
  Parsed out{{}, {}, false, 0};
  if (piece == 0) {
    piece = bytes.size() + 1;
  }
  for (size_t i = 0; i < bytes.size() && !parser.complete(); i += piece) {
    auto used = parser.feed(bytes.substr(i, piece));
    if (!used) {
      out.result = unexpected(used.error());
      return out;
    }
    out.used += *used;
  }
  if (!parser.complete()) {
    out.result = parser.finish();
  }
  out.response = parser.response();
  out.keep_alive = parser.keep_alive();
  return out;
}

ResponseError error_of(std::string_view bytes, HttpLimits limits = {}) {
  auto p = parse(bytes, limits);
  EXPECT_FALSE(p.result) << bytes;
  return p.result ? ResponseError::truncated : p.result.error();
}

TEST(ResponseParserTest, ContentLengthBodyInAnyPieces) {
  std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Name:  value  \r\n\r\nhello";
  for (size_t piece : {0, 1, 2, 7}) {
    auto p = parse(response, {}, piece);
    ASSERT_TRUE(p.result) << piece;
    EXPECT_EQ(p.response.status, 200);
    EXPECT_EQ(p.response.body, "hello");
    EXPECT_EQ(p.response.header("x-name"), "value");
    EXPECT_TRUE(p.keep_alive);
  }
}

TEST(ResponseParserTest, ChunkedBodyWithExtensionsAndTrailers) {
  auto p = parse(
      "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n"
      "5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
      {}, 3);
  ASSERT_TRUE(p.result);
  EXPECT_EQ(p.response.body, "hello, world");
  EXPECT_TRUE(p.keep_alive);
}

TEST(ResponseParserTest, InterimResponsesAreSkipped) {
  auto p = parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
  ASSERT_TRUE(p.result);
  EXPECT_EQ(p.response.status, 204);
  EXPECT_EQ(p.response.headers.size(), 1u);
}

TEST(ResponseParserTest, BodyUntilCloseAndConnectionRules) {
  auto p = parse("HTTP/1.0 200 OK\r\n\r\nall of it");
  ASSERT_TRUE(p.result);
  EXPECT_EQ(p.response.body, "all of it");
  EXPECT_FALSE(p.keep_alive);

  auto close = parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(close.result);
  EXPECT_FALSE(close.keep_alive);
  auto http10 = parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(http10.keep_alive);
}

TEST(ResponseParserTest, HeadResponseHasNoBody) {
  auto p = parse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", {}, 0, true);
  ASSERT_TRUE(p.result);
  EXPECT_EQ(p.response.body, "");
  EXPECT_TRUE(p.keep_alive);
}

TEST(ResponseParserTest, StopsAtTheEndOfTheResponse) {
  auto p = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
  ASSERT_TRUE(p.result);
  EXPECT_EQ(p.response.body, "ok");
  EXPECT_EQ(p.used, 40u);
}

TEST(ResponseParserTest, MalformedStatusLines) {
  for (const char* bad : {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n",
                          "HTTP/1.1 abc OK\r\n\r\n", "http/1.1 200 OK\r\n\r\n", "garbage\r\n\r\n",
                          "HTTP/1.1 200OK\r\n\r\n", "HTTP/1.1 020 OK\r\n\r\n"}) {
    EXPECT_EQ(error_of(bad), ResponseError::malformed_status_line) << bad;
  }
}

TEST(ResponseParserTest, MalformedHeaderLines) {
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), ResponseError::malformed_header);
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\n: no name\r\n\r\n"), ResponseError::malformed_header);
}

TEST(ResponseParserTest, GarbageChunkSizes) {
  for (const char* size :
       {"zz", "-1", "0x10", "", " ", "1 2", "10000000000000000", "ffffffffffffffffffff", "+5"}) {
    std::string response =
        std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") + size + "\r\n";
    EXPECT_EQ(error_of(response), ResponseError::malformed_chunk) << "'" << size << "'";
  }
  // A chunk not followed by CRLF.
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"),
            ResponseError::malformed_chunk);
}

TEST(ResponseParserTest, OverLongHeaderLine) {
  HttpLimits limits;
  limits.max_header_line = 100;
  std::string long_line = "X-Long: " + std::string(200, 'a') + "\r\n";
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\n" + long_line + "\r\n", limits),
            ResponseError::header_line_too_long);
  // Also when it arrives in pieces and never ends.
  auto p = parse("HTTP/1.1 200 OK\r\nX-Long: " + std::string(200, 'a'), limits, 10);
  ASSERT_FALSE(p.result);
  EXPECT_EQ(p.result.error(), ResponseError::header_line_too_long);
  // The status line and chunk-size lines count too.
  EXPECT_EQ(error_of("HTTP/1.1 200 " + std::string(200, 'O') + "\r\n\r\n", limits),
            ResponseError::header_line_too_long);
  // A line exactly at the limit is fine.
  std::string fits = "X: " + std::string(97, 'a');
  EXPECT_TRUE(parse("HTTP/1.1 204 No\r\n" + fits + "\r\n\r\n", limits).result);
}

TEST(ResponseParserTest, TooManyHeaders) {
  HttpLimits limits;
  limits.max_headers = 10;
  std::string many = "HTTP/1.1 204 No Content\r\n";
  for (int i = 0; i < 11; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(error_of(many + "\r\n", limits), ResponseError::too_many_headers);
  // Trailers and interim responses count against the same limit.
  std::string trailers = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 11; ++i) {
    trailers += "T: v\r\n";
  }
  EXPECT_EQ(error_of(trailers + "\r\n", limits), ResponseError::too_many_headers);
  std::string interim;
  for (int i = 0; i < 11; ++i) {
    interim += "HTTP/1.1 100 Continue\r\nX: v\r\n\r\n";
  }
  EXPECT_EQ(error_of(interim, limits), ResponseError::too_many_headers);
}

TEST(ResponseParserTest, InvalidContentLength) {
  for (const char* bad : {"abc", "-1", "+5", "5 5", "0x10", "", "1.5", "5,5"}) {
    std::string response = std::string("HTTP/1.1 200 OK\r\nContent-Length: ") + bad + "\r\n\r\n";
    EXPECT_EQ(error_of(response), ResponseError::invalid_content_length) << "'" << bad << "'";
  }
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            ResponseError::invalid_content_length);
  auto same = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_TRUE(same.result);
}

TEST(ResponseParserTest, OverflowingContentLength) {
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            ResponseError::invalid_content_length);
  // 2^64 exactly does not fit either; 2^64 - 1 fits but passes the limit.
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n"),
            ResponseError::invalid_content_length);
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            ResponseError::body_too_large);
}

TEST(ResponseParserTest, BodyOverTheCap) {
  HttpLimits limits;
  limits.max_body_bytes = 10;
  // Announced: refused before any body byte.
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", limits),
            ResponseError::body_too_large);
  EXPECT_TRUE(parse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", limits).result);
  // Chunked: the chunk that passes the cap.
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "8\r\n01234567\r\n3\r\n",
                     limits),
            ResponseError::body_too_large);
  // Until close: as the bytes arrive.
  auto p = parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + std::string(11, 'x'), limits, 4);
  ASSERT_FALSE(p.result);
  EXPECT_EQ(p.result.error(), ResponseError::body_too_large);
}

TEST(ResponseParserTest, TruncatedResponses) {
  EXPECT_EQ(error_of(""), ResponseError::truncated);
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Le"), ResponseError::truncated);
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"), ResponseError::truncated);
  EXPECT_EQ(error_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            ResponseError::truncated);
}

}  // namespace
}  // namespace kiln::net
