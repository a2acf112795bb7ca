// The libcurl transport's response limits against a loopback server.
#include "kiln/net/curl_client.hpp"

#include <gtest/gtest.h>

#include <string>

#include "loopback_server.hpp"

namespace kiln::net {
namespace {

using test::LoopbackServer;

HttpLimits small_limits() {
  HttpLimits limits;
  limits.max_body_bytes = 1000;
  limits.max_header_line = 200;
  limits.max_headers = 20;
  return limits;
}

expected<HttpResponse, HttpError> get(const LoopbackServer& server, HttpLimits limits = {}) {
  auto client = make_curl_client(HttpTimeouts{2000, 5000}, limits);
  return client->get(server.url("/x"));
}

TEST(CurlClientTest, ReadsAResponseWithinTheLimits) {
  auto server = LoopbackServer::answering(
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Name:  v  \r\n\r\nhello");
  auto r = get(server, small_limits());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->header("x-name"), "v");
}

TEST(CurlClientTest, BodyOverTheCapIsRefused) {
  auto announced = LoopbackServer::answering("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n");
  auto r = get(announced, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;

  LoopbackServer endless([](int fd) {
    LoopbackServer::write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    std::string block(4096, 'x');
    while (LoopbackServer::write_all(fd, block)) {
    }
  });
  r = get(endless, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;
}

TEST(CurlClientTest, OverLongHeaderLineAndTooManyHeaders) {
  auto long_line =
      LoopbackServer::answering("HTTP/1.1 200 OK\r\nX-Long: " + std::string(300, 'a') + "\r\n\r\n");
  auto r = get(long_line, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;

  std::string many = "HTTP/1.1 204 No Content\r\n";
  for (int i = 0; i < 21; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  auto too_many = LoopbackServer::answering(many + "\r\n");
  r = get(too_many, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;
}

TEST(CurlClientTest, GarbageChunkSizeAndBadContentLengthFail) {
  auto chunk = LoopbackServer::answering(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
  EXPECT_FALSE(get(chunk));
  auto overflow = LoopbackServer::answering(
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nhello");
  auto r = get(overflow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().kind, TransportError::timeout) << r.error().message;
}

}  // namespace
}  // namespace kiln::net
