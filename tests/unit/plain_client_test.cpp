// The socket transport's limits and response checks against a loopback server
// (protocol edge cases with a scripted server: tests/remote/http_plain_client_test.cpp).
#include "kiln/net/plain_client.hpp"

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
  auto client = make_plain_client(HttpTimeouts{2000, 5000}, limits);
  return client->get(server.url("/x"));
}

TEST(PlainClientTest, ReadsAResponseWithinTheLimits) {
  auto server = LoopbackServer::answering("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  auto r = get(server, small_limits());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
}

TEST(PlainClientTest, BodyOverTheCapIsRefused) {
  auto announced = LoopbackServer::answering("HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n");
  auto r = get(announced, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;

  // A server that never stops sending: the client stops at the cap.
  LoopbackServer endless([](int fd) {
    LoopbackServer::write_all(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
    std::string block(4096, 'x');
    while (LoopbackServer::write_all(fd, block)) {
    }
  });
  r = get(endless, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;

  LoopbackServer chunked([](int fd) {
    LoopbackServer::write_all(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string chunk = "100\r\n" + std::string(256, 'x') + "\r\n";
    while (LoopbackServer::write_all(fd, chunk)) {
    }
  });
  r = get(chunked, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large) << r.error().message;
}

TEST(PlainClientTest, OverLongHeaderLineAndTooManyHeaders) {
  auto long_line =
      LoopbackServer::answering("HTTP/1.1 200 OK\r\nX-Long: " + std::string(300, 'a') + "\r\n\r\n");
  auto r = get(long_line, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large);
  EXPECT_NE(r.error().message.find("header line too long"), std::string::npos) << r.error().message;

  std::string many = "HTTP/1.1 204 No Content\r\n";
  for (int i = 0; i < 21; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  auto too_many = LoopbackServer::answering(many + "\r\n");
  r = get(too_many, small_limits());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::response_too_large);
  EXPECT_NE(r.error().message.find("too many header lines"), std::string::npos)
      << r.error().message;
}

TEST(PlainClientTest, GarbageChunkSizeIsMalformed) {
  auto server = LoopbackServer::answering(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
  auto r = get(server);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::malformed_response) << r.error().message;
}

TEST(PlainClientTest, InvalidAndOverflowingContentLengthAreMalformed) {
  for (const char* length : {"abc", "-5", "99999999999999999999999"}) {
    auto server = LoopbackServer::answering(std::string("HTTP/1.1 200 OK\r\nContent-Length: ") +
                                            length + "\r\n\r\nhello");
    auto r = get(server);
    ASSERT_FALSE(r) << length;
    EXPECT_EQ(r.error().kind, TransportError::malformed_response) << r.error().message;
    EXPECT_NE(r.error().message.find("invalid Content-Length"), std::string::npos)
        << r.error().message;
  }
}

TEST(PlainClientTest, HttpsAndOtherSchemesAreRefused) {
  auto client = make_plain_client();
  auto https = client->get("https://127.0.0.1:1/x");
  ASSERT_FALSE(https);
  EXPECT_EQ(https.error().kind, TransportError::cannot_connect);
  auto ftp = client->get("ftp://127.0.0.1/x");
  ASSERT_FALSE(ftp);
  EXPECT_EQ(ftp.error().kind, TransportError::other);
  auto port = client->get("http://user:hunter2@127.0.0.1:99999/x");
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message.find("port"), std::string::npos) << port.error().message;
  EXPECT_EQ(port.error().message.find("hunter2"), std::string::npos) << port.error().message;
  auto escape = client->get("http://user:%zz@127.0.0.1:1/x");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().message.find("%zz"), std::string::npos) << escape.error().message;
}

}  // namespace
}  // namespace kiln::net
