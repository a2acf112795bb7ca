// The socket transport (net::make_plain_client, libkiln-http.so): the
// protocol cases nginx cannot produce on demand, against a scripted fake
// server, and connection reuse against a real nginx. The HttpStorage tests of
// http_storage_test.cpp run on this transport as well (kiln_remote_plain_tests).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kiln/net/plain_client.hpp"
#include "kiln/storage/remote/aws_sigv4.hpp"
#include "server_fixture.hpp"

namespace kiln::storage {
namespace {

using Clock = std::chrono::steady_clock;
using net::HttpClient;
using net::HttpRequest;
using net::HttpTimeouts;
using net::TransportError;

// Waits up to `timeout_ms` for `fd` to be readable.
bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

// One request (headers and a Content-Length body) from `fd`; "" at EOF or
// after 5 s of silence.
std::string read_request(int fd) {
  std::string data;
  char buffer[4096];
  for (;;) {
    auto end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t length = 0;
      auto cl = data.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        length = std::stoul(data.substr(cl + 16));
      }
      if (data.size() >= end + 4 + length) {
        return data;
      }
    }
    if (!readable(fd, 5000)) {
      return "";
    }
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) {
      return "";
    }
    data.append(buffer, static_cast<size_t>(n));
  }
}

void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Waits until the client closes the connection (at most 5 s).
void wait_for_close(int fd) {
  char c;
  while (readable(fd, 5000) && ::recv(fd, &c, 1, 0) > 0) {
  }
}

// A scripted fake HTTP server, used only for these edge cases: it listens on
// 127.0.0.1, port 0, and runs the next function of its script on each
// connection it accepts (then closes it), recording the requests the script
// read. Not a real server; HttpStorage is tested against nginx.
class ScriptedServer {
 public:
  using Step = std::function<void(int fd, ScriptedServer& server)>;

  explicit ScriptedServer(std::vector<Step> steps) : m_steps(std::move(steps)) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t length = sizeof(addr);
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(m_fd, 8) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      return;
    }
    m_port = ntohs(addr.sin_port);
    m_thread = std::thread([this] { serve(); });
  }

  ~ScriptedServer() {
    m_stop = true;
    if (m_thread.joinable()) {
      m_thread.join();
    }
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }

  int port() const { return m_port; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
  int accepted() const { return m_accepted; }

  // Reads one request from `fd` and records it; "" at EOF.
  std::string read(int fd) {
    std::string r = read_request(fd);
    if (!r.empty()) {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_requests.push_back(r);
    }
    return r;
  }

  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_requests;
  }

 private:
  void serve() {
    for (auto& step : m_steps) {
      int client = -1;
      while (!m_stop && client < 0) {
        if (readable(m_fd, 50)) {
          client = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
        }
      }
      if (client < 0) {
        return;
      }
      ++m_accepted;
      int one = 1;
      ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      step(client, *this);
      ::close(client);
    }
  }

  std::vector<Step> m_steps;
  int m_fd = -1;
  int m_port = 0;
  std::atomic<bool> m_stop{false};
  std::atomic<int> m_accepted{0};
  mutable std::mutex m_mutex;
  std::vector<std::string> m_requests;
  std::thread m_thread;
};

// A step answering every request on its connection with `responses`, in
// order, then waiting for the client to close.
ScriptedServer::Step answer(std::vector<std::string> responses) {
  return [responses](int fd, ScriptedServer& server) {
    for (const auto& r : responses) {
      if (server.read(fd).empty()) {
        return;
      }
      write_all(fd, r);
    }
    wait_for_close(fd);
  };
}

TEST(HttpPlainClient, ReadsAChunkedBodyAndKeepsTheConnection) {
  ScriptedServer server({answer({
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
      "HTTP/1.1 204 No Content\r\n\r\n",
  })});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/chunked");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello, world");
  r = client.del(server.url() + "/x");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpPlainClient, ReadsAResponseSplitIntoTinyWrites) {
  std::string body(3000, '\0');
  for (size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>(i * 7);
  }
  std::string response =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-Spaced:   a value  \r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  ScriptedServer server({[&](int fd, ScriptedServer& s) {
    s.read(fd);
    for (size_t i = 0; i < response.size(); i += 3) {
      write_all(fd, std::string_view(response).substr(i, 3));
      if (i % 300 == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    wait_for_close(fd);
  }});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/tiny");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body == body);
  EXPECT_EQ(r->header("x-spaced"), "a value");
  EXPECT_EQ(r->header("content-length"), std::to_string(body.size()));
}

TEST(HttpPlainClient, ConnectionCloseAndHttp10OpenNewConnections) {
  ScriptedServer server({
      answer({"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\none"}),
      answer({"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\ntwo"}),
      answer({"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree"}),
  });
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  for (const char* expected : {"one", "two", "three"}) {
    auto r = client.get(server.url() + "/");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->body, expected);
  }
  EXPECT_EQ(client.connections_opened(), 3);
}

TEST(HttpPlainClient, RetriesOnceWhenTheServerDroppedAKeptAliveConnection) {
  ScriptedServer server({
      [](int fd, ScriptedServer& s) {
        s.read(fd);
        write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
        s.read(fd);  // the second request arrives; the server closes without answering
      },
      answer({"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"}),
  });
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/1");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "first");
  r = client.get(server.url() + "/2");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "second");
  EXPECT_EQ(client.connections_opened(), 2);
  EXPECT_EQ(server.requests().size(), 3u);  // /2 twice: on the old and on the new connection
}

TEST(HttpPlainClient, DoesNotRetryOnAFreshConnection) {
  ScriptedServer server({[](int fd, ScriptedServer& s) { s.read(fd); },
                         answer({"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"})});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::other);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos)
      << r.error().message;
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpPlainClient, SilentServerTimesOutWithinTheTotalTimeout) {
  ScriptedServer server({[](int fd, ScriptedServer& s) {
    s.read(fd);
    wait_for_close(fd);
  }});
  auto owned = net::make_plain_client(HttpTimeouts{500, 700});
  HttpClient& client = *owned;
  auto start = Clock::now();
  auto r = client.get(server.url() + "/slow");
  auto elapsed = Clock::now() - start;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::timeout) << r.error().message;
  EXPECT_GE(elapsed, std::chrono::milliseconds(690));
  EXPECT_LT(elapsed, std::chrono::milliseconds(700 + 500));
  EXPECT_NE(r.error().message.find("127.0.0.1:"), std::string::npos) << r.error().message;
}

TEST(HttpPlainClient, RefusedConnectionCannotConnect) {
  int port = test::free_port();
  ASSERT_GT(port, 0);
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get("http://127.0.0.1:" + std::to_string(port) + "/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::cannot_connect);
  EXPECT_NE(r.error().message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << r.error().message;
  EXPECT_EQ(client.connections_opened(), 0);
}

TEST(HttpPlainClient, Ipv6LiteralIsParsed) {
  // Nothing listens there (tests bind only 127.0.0.1): refused, or no IPv6 at all.
  int port = test::free_port();
  ASSERT_GT(port, 0);
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get("http://[::1]:" + std::to_string(port) + "/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::cannot_connect) << r.error().message;
  EXPECT_NE(r.error().message.find("[::1]:" + std::to_string(port)), std::string::npos)
      << r.error().message;
}

TEST(HttpPlainClient, UnresolvableHostCannotConnect) {
  auto owned = net::make_plain_client(HttpTimeouts{1000, 2000});
  HttpClient& client = *owned;
  auto start = Clock::now();
  auto r = client.get("http://no-such-host.invalid/");
  ASSERT_FALSE(r);
  // NXDOMAIN, or no answer at all where the DNS is unreachable: then the
  // lookup gives up at the connect timeout.
  EXPECT_TRUE(r.error().kind == TransportError::cannot_connect ||
              r.error().kind == TransportError::timeout)
      << r.error().message;
  EXPECT_NE(r.error().message.find("no-such-host.invalid"), std::string::npos) << r.error().message;
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1000 + 500));
}

// What the child of HungNameServerTimesOutAtTheConnectTimeout found.
enum HungDnsOutcome {
  k_dns_ok = 0,
  k_dns_succeeded = 1,
  k_dns_wrong_kind = 2,
  k_dns_too_slow = 3,
  k_dns_too_fast = 4,
  k_dns_cannot_set_up = 77,
};

int hung_dns_child() {
  // A private mount namespace in which /etc/resolv.conf names 127.0.0.77,
  // where a UDP socket reads nothing: a DNS server that never answers.
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return k_dns_cannot_set_up;
  }
  char conf[] = "/tmp/kiln-resolv-XXXXXX";
  int fd = ::mkstemp(conf);
  if (fd < 0) {
    return k_dns_cannot_set_up;
  }
  std::string text = "nameserver 127.0.0.77\noptions timeout:3 attempts:2\n";
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  bool mounted = written && ::mount(conf, "/etc/resolv.conf", nullptr, MS_BIND, nullptr) == 0;
  ::unlink(conf);
  int dns = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(53);
  address.sin_addr.s_addr = htonl(0x7f00004d);  // 127.0.0.77
  if (!mounted || dns < 0 ||
      ::bind(dns, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return k_dns_cannot_set_up;
  }
  auto owned = net::make_plain_client(HttpTimeouts{400, 3000});
  HttpClient& client = *owned;
  auto start = Clock::now();
  auto r = client.get("http://kiln-hung-dns-test.example:8080/x");
  auto elapsed = Clock::now() - start;
  if (r) {
    return k_dns_succeeded;
  }
  if (r.error().kind != TransportError::timeout) {
    return k_dns_wrong_kind;
  }
  if (elapsed > std::chrono::milliseconds(1500)) {
    return k_dns_too_slow;
  }
  return elapsed < std::chrono::milliseconds(390) ? k_dns_too_fast : k_dns_ok;
}

TEST(HttpPlainClient, HungNameServerTimesOutAtTheConnectTimeout) {
  // libcurl bounds name lookups by the connect timeout; so must this client,
  // or a dead DNS server would hold every compilation for the resolver's own
  // timeouts (3 s x 2 attempts here). Needs root for the mount namespace and
  // port 53, which CI has.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::_exit(hung_dns_child());
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  int outcome = WEXITSTATUS(status);
  if (outcome == k_dns_cannot_set_up) {
    GTEST_SKIP() << "cannot make a private mount namespace or bind 127.0.0.77:53 here";
  }
  EXPECT_NE(outcome, k_dns_succeeded) << "the lookup of a name nobody answers for succeeded";
  EXPECT_NE(outcome, k_dns_wrong_kind) << "not reported as a timeout";
  EXPECT_NE(outcome, k_dns_too_slow) << "the lookup outlived the 400 ms connect timeout";
  EXPECT_NE(outcome, k_dns_too_fast) << "gave up before the connect timeout";
  EXPECT_EQ(outcome, k_dns_ok);
}

TEST(HttpPlainClient, TruncatedBodyIsAnError) {
  ScriptedServer server({[](int fd, ScriptedServer& s) {
    s.read(fd);
    write_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(40, 'x'));
  }});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/short");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::other);
  EXPECT_NE(r.error().message.find("40 of 100"), std::string::npos) << r.error().message;
}

TEST(HttpPlainClient, MalformedStatusLineIsAnError) {
  ScriptedServer server({[](int fd, ScriptedServer& s) {
    s.read(fd);
    write_all(fd, "SSH-2.0-OpenSSH\r\n\r\n");
  }});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get(server.url() + "/");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::malformed_response);
  EXPECT_NE(r.error().message.find("malformed status line"), std::string::npos)
      << r.error().message;
}

TEST(HttpPlainClient, HeadResponseHasNoBody) {
  ScriptedServer server({answer({
      "HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
  })});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.head(server.url() + "/entry");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(r->header("content-length"), "12345");
  r = client.get(server.url() + "/entry");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->body, "body");
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpPlainClient, SendsTheRequestLineAndHeaders) {
  ScriptedServer server({answer({
      "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
  })});
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.put(server.url() + "/a/b?x=1", "", {"X-Team: infra", "Expect:"});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  r = client.post(server.url() + "/form", "k=v", {"Content-Type: text/plain"});
  ASSERT_TRUE(r) << r.error().message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  std::string host = "Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n";
  EXPECT_TRUE(requests[0].starts_with("PUT /a/b?x=1 HTTP/1.1\r\n" + host)) << requests[0];
  EXPECT_NE(requests[0].find("\r\nUser-Agent: kiln\r\n"), std::string::npos) << requests[0];
  EXPECT_NE(requests[0].find("\r\nX-Team: infra\r\n"), std::string::npos) << requests[0];
  EXPECT_NE(requests[0].find("\r\nContent-Length: 0\r\n"), std::string::npos) << requests[0];
  EXPECT_NE(requests[0].find("\r\nContent-Type: application/octet-stream\r\n"), std::string::npos)
      << requests[0];
  EXPECT_EQ(requests[0].find("Expect"), std::string::npos) << requests[0];
  EXPECT_TRUE(requests[1].starts_with("POST /form HTTP/1.1\r\n")) << requests[1];
  EXPECT_TRUE(requests[1].ends_with("\r\nContent-Length: 3\r\n\r\nk=v")) << requests[1];
  EXPECT_EQ(requests[1].find("octet-stream"), std::string::npos) << requests[1];
}

TEST(HttpPlainClient, SignedRequestSendsTheSignatureHeadersOnce) {
  ScriptedServer server({answer({"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"})});
  AwsSigning aws;
  aws.region = "us-east-1";
  aws.access_key_id = "AKID";
  aws.secret_access_key = "secret";
  HttpRequest request;
  request.method = "PUT";
  request.url = server.url() + "/bucket/key";
  request.body = "value";
  sign_request(&request, aws, util::Clock::system());
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.perform(request);
  ASSERT_TRUE(r) << r.error().message;
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const std::string& sent = requests[0];
  std::string host = "\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n";
  auto first = sent.find(host);
  EXPECT_NE(first, std::string::npos) << sent;
  EXPECT_EQ(sent.find("Host:", first + 3), std::string::npos) << sent;
  EXPECT_NE(sent.find("\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKID/"), std::string::npos)
      << sent;
  EXPECT_NE(sent.find("\r\nx-amz-content-sha256: "), std::string::npos) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\nvalue")) << sent;
}

TEST(HttpPlainClient, HttpsIsRejected) {
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.get("https://127.0.0.1:1/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, TransportError::cannot_connect);
  EXPECT_NE(r.error().message.find("libkiln-remote.so"), std::string::npos) << r.error().message;
  EXPECT_EQ(client.connections_opened(), 0);
}

TEST(HttpPlainClient, ReusesOneConnectionWithNginx) {
  std::string why;
  bool missing = false;
  auto nginx = test::NginxServer::start(&why, &missing);
  if (!nginx) {
    if (missing) {
      GTEST_SKIP() << why;
    }
    FAIL() << why;
  }
  auto owned = net::make_plain_client();
  HttpClient& client = *owned;
  auto r = client.put(nginx->url() + "/reuse/value", "payload");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status / 100, 2);
  r = client.get(nginx->url() + "/reuse/value");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "payload");
  EXPECT_EQ(client.connections_opened(), 1);
}

}  // namespace
}  // namespace kiln::storage
