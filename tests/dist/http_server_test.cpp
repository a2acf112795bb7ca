#include "kiln/net/server/http_server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "kiln/net/curl_client.hpp"
#include "kiln/net/server/tls.hpp"

namespace kiln::net {
namespace {

using namespace std::chrono_literals;

// A raw TCP client, for what a well-behaved HTTP client would never send.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m_connected = ::connect(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { ::close(m_fd); }
  bool connected() const { return m_connected; }
  void send(std::string_view data) { (void)::send(m_fd, data.data(), data.size(), MSG_NOSIGNAL); }
  // Everything until the server closes, or what came within `timeout`.
  std::string read_until_close(std::chrono::milliseconds timeout, bool* closed = nullptr) {
    std::string out;
    auto end = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          end - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        break;
      }
      pollfd p{m_fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        break;
      }
      char buf[4096];
      ssize_t n = ::recv(m_fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (closed) {
          *closed = true;
        }
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  void close() {
    ::close(m_fd);
    m_fd = -1;
  }

 private:
  int m_fd = -1;
  bool m_connected = false;
};

Handler echo_handler() {
  return [](ServerRequest&& req, Reply reply) {
    ServerResponse r;
    r.content_type = "text/plain";
    r.body = req.method + " " + req.path + " ?" + req.query + " " + req.body;
    if (auto v = req.header("x-echo")) {
      r.headers.emplace_back("X-Echo", *v);
    }
    reply(std::move(r));
  };
}

std::unique_ptr<HttpServer> start(ServerOptions options, Handler handler) {
  auto server = HttpServer::start(std::move(options), std::move(handler));
  EXPECT_TRUE(server) << (server ? "" : server.error());
  return server ? std::move(*server) : nullptr;
}

std::string url(const HttpServer& server, std::string_view path, std::string_view scheme = "http") {
  return std::string(scheme) + "://127.0.0.1:" + std::to_string(server.port()) + std::string(path);
}

TEST(HttpServerTest, ServesRequestsOnOneKeptAliveConnection) {
  auto server = start({}, echo_handler());
  ASSERT_TRUE(server);
  ASSERT_NE(server->port(), 0);
  auto client = make_curl_client();
  for (int i = 0; i < 3; ++i) {
    auto r =
        client->post(url(*server, "/api/v1/x?a=1"), "body" + std::to_string(i), {"X-Echo: hello"});
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST /api/v1/x ?a=1 body" + std::to_string(i));
    EXPECT_EQ(r->header("x-echo").value_or(""), "hello");
  }
  EXPECT_EQ(client->connections_opened(), 1);
  EXPECT_EQ(server->stats().requests, 3u);
}

TEST(HttpServerTest, HandlerRepliesLaterFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  auto server = start({}, [&](ServerRequest&& req, Reply reply) {
    std::lock_guard lock(mu);
    workers.emplace_back([reply, body = req.body] {
      std::this_thread::sleep_for(50ms);
      ServerResponse r;
      r.status = 202;
      r.body = "later " + body;
      reply(r);
      reply(r);  // a second call is ignored
    });
  });
  ASSERT_TRUE(server);
  auto client = make_curl_client();
  auto r = client->post(url(*server, "/slow"), "x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "later x");
  server->stop();
  for (auto& t : workers) {
    t.join();
  }
}

TEST(HttpServerTest, OversizedBodyIsRefusedBeforeItIsRead) {
  ServerOptions options;
  options.max_body_bytes = 1024;
  int handled = 0;
  auto server = start(options, [&](ServerRequest&&, Reply reply) {
    ++handled;
    reply({});
  });
  ASSERT_TRUE(server);
  RawClient raw(server->port());
  ASSERT_TRUE(raw.connected());
  raw.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
  bool closed = false;
  std::string answer = raw.read_until_close(5s, &closed);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer;
  EXPECT_TRUE(closed);
  // Chunked: refused once the body passes the limit.
  RawClient chunked(server->port());
  chunked.send("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; ++i) {
    chunked.send("200\r\n" + std::string(0x200, 'a') + "\r\n");
  }
  answer = chunked.read_until_close(5s);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer;
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(server->stats().rejected, 2u);
}

TEST(HttpServerTest, ABodyLimitPerPathRefusesLargeBodiesToSmallPaths) {
  ServerOptions options;
  options.max_body_bytes = 1 << 20;
  options.body_limit_for = [](std::string_view method, std::string_view target) -> uint64_t {
    return method == "PUT" && target.starts_with("/big/") ? 1 << 20 : 100;
  };
  auto server = start(options, echo_handler());
  ASSERT_TRUE(server);
  auto client = make_curl_client();
  std::string body(5000, 'b');
  auto small = client->put(url(*server, "/small/x"), body);
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 413);
  auto big = client->put(url(*server, "/big/x"), body);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 200);
  // Chunked, without a length: cut off once it passes the path's limit.
  RawClient chunked(server->port());
  chunked.send("PUT /small/y HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
  chunked.send("100\r\n" + std::string(0x100, 'a') + "\r\n");
  EXPECT_TRUE(chunked.read_until_close(5s).starts_with("HTTP/1.1 413"));
  // The server's own maximum still caps a path's limit.
  auto huge = client->put(url(*server, "/big/z"), std::string((1 << 20) + 1, 'h'));
  ASSERT_TRUE(huge);
  EXPECT_EQ(huge->status, 413);
}

TEST(HttpServerTest, BadFramingGets4xxAndTheServerKeepsServing) {
  ServerOptions options;
  options.max_header_bytes = 4096;
  auto server = start(options, echo_handler());
  ASSERT_TRUE(server);
  {
    RawClient raw(server->port());
    raw.send("GET /x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(8000, 'b') + "\r\n\r\n");
    std::string answer = raw.read_until_close(5s);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 431")) << answer;
  }
  {
    RawClient raw(server->port());
    raw.send("NOT HTTP AT ALL\r\n\r\n");
    std::string answer = raw.read_until_close(5s);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  }
  {
    RawClient raw(server->port());
    raw.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n");
    std::string answer = raw.read_until_close(5s);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  }
  auto client = make_curl_client();
  auto r = client->get(url(*server, "/still"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, HalfABodyIsCutOffAtTheIoTimeout) {
  ServerOptions options;
  options.io_timeout = 300ms;
  auto server = start(options, echo_handler());
  ASSERT_TRUE(server);
  RawClient raw(server->port());
  raw.send("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
  bool closed = false;
  auto begin = std::chrono::steady_clock::now();
  std::string answer = raw.read_until_close(10s, &closed);
  EXPECT_TRUE(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
  EXPECT_EQ(answer, "");
  auto client = make_curl_client();
  auto r = client->get(url(*server, "/still"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerTest, HandlerSeesTheClientGo) {
  std::shared_ptr<const std::atomic<bool>> gone;
  Reply held;
  std::mutex mu;
  auto server = start({}, [&](ServerRequest&& req, Reply reply) {
    std::lock_guard lock(mu);
    gone = req.client_gone;
    held = reply;
  });
  ASSERT_TRUE(server);
  RawClient raw(server->port());
  raw.send("POST /job HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
  for (int i = 0; i < 200; ++i) {
    std::lock_guard lock(mu);
    if (gone) {
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  {
    std::lock_guard lock(mu);
    ASSERT_TRUE(gone);
    EXPECT_FALSE(gone->load());
  }
  raw.close();
  bool seen = false;
  for (int i = 0; i < 300 && !seen; ++i) {
    std::this_thread::sleep_for(10ms);
    seen = gone->load();
  }
  EXPECT_TRUE(seen);
  held({});  // a reply to a closed connection goes nowhere
}

TEST(HttpServerTest, StopClosesOpenConnections) {
  auto server = start({}, [](ServerRequest&&, Reply) {});  // never replies
  ASSERT_TRUE(server);
  RawClient raw(server->port());
  raw.send("GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  server->stop();
  bool closed = false;
  raw.read_until_close(5s, &closed);
  EXPECT_TRUE(closed);
  RawClient after(server->port());
  EXPECT_FALSE(after.connected());
}

TEST(HttpServerTest, TlsVerifiesAgainstTheVouchedCertificateOnly) {
  auto identity = make_self_signed("worker-1", {"127.0.0.1", "localhost"});
  ASSERT_TRUE(identity) << identity.error();
  auto other = make_self_signed("worker-2", {"127.0.0.1"});
  ASSERT_TRUE(other);
  EXPECT_EQ(certificate_fingerprint(identity->cert_pem).size(), 64u);
  EXPECT_NE(certificate_fingerprint(identity->cert_pem), certificate_fingerprint(other->cert_pem));
  EXPECT_EQ(certificate_fingerprint("not a certificate"), "");

  ServerOptions options;
  options.tls = TlsIdentity{identity->cert_pem, identity->key_pem};
  auto server = start(options, echo_handler());
  ASSERT_TRUE(server);
  auto client = make_curl_client();
  HttpRequest good;
  good.url = url(*server, "/secure", "https");
  good.ca_pem = identity->cert_pem;
  auto r = client->perform(good);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /secure ? ");

  // The certificate of another server (a worker that used to be at this
  // address) does not verify this one, even on the kept-alive client.
  HttpRequest stale = good;
  stale.ca_pem = other->cert_pem;
  auto bad = client->perform(stale);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, TransportError::cannot_connect) << bad.error().message;
  // Nor does the system's store.
  HttpRequest system = good;
  system.ca_pem = {};
  EXPECT_FALSE(client->perform(system));
  // Plain HTTP to a TLS port gets nothing useful.
  auto plain = make_curl_client()->get(url(*server, "/secure"));
  EXPECT_TRUE(!plain || plain->status != 200);
}

TEST(HttpServerTest, BadCertificateIsAStartError) {
  ServerOptions options;
  options.tls = TlsIdentity{"garbage", "garbage"};
  auto server = HttpServer::start(options, echo_handler());
  EXPECT_FALSE(server);
}

TEST(HttpServerTest, PortInUseIsAStartError) {
  auto first = start({}, echo_handler());
  ASSERT_TRUE(first);
  ServerOptions options;
  options.port = first->port();
  auto second = HttpServer::start(options, echo_handler());
  EXPECT_FALSE(second);
}

}  // namespace
}  // namespace kiln::net
