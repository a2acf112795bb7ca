#include "kiln/storage/remote/http_storage.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "kiln/net/curl_client.hpp"
#include "kiln/net/plain_client.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "server_fixture.hpp"

namespace kiln::storage {
namespace {

using net::HttpClient;
using test::NginxServer;
using test::RecordingServer;
using test::SilentServer;

// The transport under test: kiln_remote_tests run these tests on libcurl,
// kiln_remote_plain_tests (KILN_TEST_PLAIN_TRANSPORT) on the socket client.
std::unique_ptr<HttpClient> test_client(net::HttpTimeouts timeouts = {}) {
#ifdef KILN_TEST_PLAIN_TRANSPORT
  return net::make_plain_client(timeouts);
#else
  return net::make_curl_client(timeouts);
#endif
}

// HttpStorage on the transport under test.
class TestHttpStorage : public HttpStorage {
 public:
  explicit TestHttpStorage(const HttpSettings& settings)
      : HttpStorage(settings, test_client(client_timeouts(settings))) {}
};

Key key_of(std::string_view text) {
  return Key{util::Hasher().update(text).finish()};
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Binary content with every byte value, NULs included.
std::string binary_value(size_t size) {
  std::string v(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    v[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  }
  return v;
}

class HttpStorageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { m_nginx = NginxServer::start(&m_why, &m_missing); }
  static void TearDownTestSuite() { m_nginx.reset(); }

  void SetUp() override {
    if (!m_nginx) {
      if (m_missing) {
        GTEST_SKIP() << m_why;
      }
      FAIL() << m_why;
    }
  }

  static HttpSettings settings_for(const std::string& url) {
    HttpSettings s;
    s.url = url;
    s.common.connect_timeout_ms = 2000;
    s.common.request_timeout_ms = 10000;
    return s;
  }

  static inline std::unique_ptr<NginxServer> m_nginx;
  static inline std::string m_why;
  static inline bool m_missing = false;
};

TEST_F(HttpStorageTest, PutGetExistsRemoveAgainstNginxWebDav) {
  TestHttpStorage storage(settings_for(m_nginx->url() + "/cache/"));
  Key key = key_of("round trip");
  std::string value = binary_value(1000);

  EXPECT_EQ(storage.name(), "http");
  ASSERT_TRUE(storage.put(key, value)) << storage.last_error();
  // WebDAV stored it as a file at <url>/<k0k1>/<k2k3>/<name>.
  auto on_disk = util::read_file(m_nginx->root() + "/cache/" + key.relative_path());
  ASSERT_TRUE(on_disk);
  EXPECT_EQ(*on_disk, value);

  auto got = storage.get(key);
  ASSERT_TRUE(got) << storage.last_error();
  EXPECT_EQ(*got, value);
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists);
  EXPECT_TRUE(*exists);

  ASSERT_TRUE(storage.remove(key)) << storage.last_error();
  exists = storage.exists(key);
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
}

TEST_F(HttpStorageTest, MissingKeyIsNotFound) {
  TestHttpStorage storage(settings_for(m_nginx->url() + "/cache"));
  Key key = key_of("never stored");
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);
  EXPECT_EQ(storage.remove(key).error(), Failure::not_found);
  EXPECT_EQ(storage.last_error(), "");
}

TEST_F(HttpStorageTest, PutOverwritesAndLargeValuesSurvive) {
  TestHttpStorage storage(settings_for(m_nginx->url()));
  Key key = key_of("large");
  ASSERT_TRUE(storage.put(key, "small")) << storage.last_error();
  std::string large = binary_value(6 * 1024 * 1024 + 7);
  ASSERT_TRUE(storage.put(key, large)) << storage.last_error();
  auto got = storage.get(key);
  ASSERT_TRUE(got) << storage.last_error();
  EXPECT_TRUE(*got == large);
}

TEST_F(HttpStorageTest, ForbiddenWriteIsAccessDenied) {
  TestHttpStorage storage(settings_for(m_nginx->url() + "/protected"));
  Key key = key_of("forbidden");
  EXPECT_EQ(storage.put(key, "value").error(), Failure::access_denied);
  EXPECT_NE(storage.last_error().find("PUT"), std::string::npos) << storage.last_error();
  EXPECT_NE(storage.last_error().find("HTTP 403"), std::string::npos) << storage.last_error();
  // The entry is kept apart from the sentence, which names it only when shown.
  Error e = storage.last_problem();
  EXPECT_EQ(e.failure, Failure::access_denied);
  EXPECT_EQ(e.key, key.relative_path());
  EXPECT_EQ(e.text(), "HTTP storage: PUT " + storage.url_of(key) + " returned HTTP 403" +
                          "; check the bearer token and the server's access rules");
  EXPECT_EQ(e.text("<key>"), "HTTP storage: PUT " + m_nginx->url() +
                                 "/protected/<key> returned HTTP 403" +
                                 "; check the bearer token and the server's access rules");
  EXPECT_EQ(e.message.find(key.name()), std::string::npos) << e.message;
  // Reads are allowed there.
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
}

TEST_F(HttpStorageTest, ClientReusesOneConnection) {
  auto owned = test_client();
  HttpClient& client = *owned;
  for (int i = 0; i < 3; ++i) {
    auto r = client.get(m_nginx->url() + "/cache/none");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 404);
  }
  auto r = client.head(m_nginx->url() + "/");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->header("server").has_value());
  EXPECT_EQ(client.connections_opened(), 1);
}

TEST(HttpStorage, SendsBearerTokenAndExtraHeaders) {
  RecordingServer server(200, "stored value");
  HttpSettings s;
  s.url = server.url() + "/base";
  s.bearer_token = "s3cr3t-token";
  s.headers = {{"X-Team", "infra"}};
  TestHttpStorage storage(s);
  Key key = key_of("headers");

  auto got = storage.get(key);
  ASSERT_TRUE(got) << storage.last_error();
  EXPECT_EQ(*got, "stored value");
  ASSERT_TRUE(storage.put(key, "the body")) << storage.last_error();

  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_TRUE(requests[0].starts_with("GET /base/" + key.relative_path() + " HTTP/1.1\r\n"))
      << requests[0];
  EXPECT_TRUE(requests[1].starts_with("PUT /base/" + key.relative_path() + " HTTP/1.1\r\n"))
      << requests[1];
  for (const auto& r : requests) {
    std::string lower = lowercase(r);
    EXPECT_NE(lower.find("\r\nauthorization: bearer s3cr3t-token\r\n"), std::string::npos) << r;
    EXPECT_NE(lower.find("\r\nx-team: infra\r\n"), std::string::npos) << r;
  }
  EXPECT_TRUE(requests[1].ends_with("\r\n\r\nthe body")) << requests[1];
  EXPECT_NE(lowercase(requests[1]).find("content-type: application/octet-stream"),
            std::string::npos);
}

TEST(HttpStorage, UnauthorizedIsAccessDenied) {
  RecordingServer server(401, "");
  TestHttpStorage storage(HttpSettings{{}, server.url(), "wrong", {}});
  EXPECT_EQ(storage.get(key_of("x")).error(), Failure::access_denied);
  EXPECT_NE(storage.last_error().find("bearer token"), std::string::npos) << storage.last_error();
  EXPECT_EQ(storage.exists(key_of("x")).error(), Failure::access_denied);
}

TEST(HttpStorage, ServerErrorIsError) {
  RecordingServer server(503, "busy");
  TestHttpStorage storage(HttpSettings{{}, server.url(), "", {}});
  EXPECT_EQ(storage.get(key_of("x")).error(), Failure::error);
  EXPECT_NE(storage.last_error().find("HTTP 503"), std::string::npos) << storage.last_error();
  EXPECT_EQ(storage.put(key_of("x"), "v").error(), Failure::error);
}

TEST(HttpStorage, ReadOnlySendsNothing) {
  SilentServer server;
  HttpSettings s;
  s.url = "http://127.0.0.1:" + std::to_string(server.port());
  s.common.read_only = true;
  TestHttpStorage storage(s);
  EXPECT_EQ(storage.put(key_of("ro"), "value").error(), Failure::error);
  EXPECT_NE(storage.last_error().find("read-only"), std::string::npos) << storage.last_error();
  EXPECT_EQ(storage.remove(key_of("ro")).error(), Failure::error);
  EXPECT_FALSE(server.connected());
}

TEST(HttpStorage, SilentServerTimesOut) {
  SilentServer server;
  HttpSettings s;
  s.url = "http://127.0.0.1:" + std::to_string(server.port());
  s.common.connect_timeout_ms = 500;
  s.common.request_timeout_ms = 700;
  TestHttpStorage storage(s);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(storage.get(key_of("slow")).error(), Failure::timeout);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::milliseconds(3000));
  EXPECT_GE(elapsed, std::chrono::milliseconds(600));
  EXPECT_TRUE(server.connected());
  EXPECT_NE(storage.last_error().find("timed out"), std::string::npos) << storage.last_error();
}

TEST(HttpStorage, ConnectionRefusedIsError) {
  int port = test::free_port();
  ASSERT_GT(port, 0);
  HttpSettings s;
  s.url = "http://user:pw@127.0.0.1:" + std::to_string(port) + "/cache";
  TestHttpStorage storage(s);
  EXPECT_EQ(storage.get(key_of("refused")).error(), Failure::error);
  EXPECT_NE(storage.last_error().find("cannot connect to http://127.0.0.1:"), std::string::npos)
      << storage.last_error();
  EXPECT_EQ(storage.last_error().find("pw@"), std::string::npos) << storage.last_error();
  EXPECT_EQ(storage.exists(key_of("refused")).error(), Failure::error);
}

TEST(HttpStorage, NoLeases) {
  using namespace std::chrono_literals;
  SilentServer server;
  HttpSettings s;
  s.url = "http://127.0.0.1:" + std::to_string(server.port());
  TestHttpStorage storage(s);
  EXPECT_FALSE(storage.supports_leases());
  Key key = key_of("lease");
  EXPECT_EQ(storage.acquire_lease(key, "a", 5s).error(), Failure::error);
  EXPECT_EQ(storage.last_error(), "leases are not supported by the HTTP level");
  EXPECT_EQ(storage.release_lease(key, "a").error(), Failure::error);
  EXPECT_EQ(storage.lease_held(key).error(), Failure::error);
  EXPECT_FALSE(server.connected());
}

}  // namespace
}  // namespace kiln::storage
