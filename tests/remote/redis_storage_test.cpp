#include "kiln/storage/remote/redis_storage.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "kiln/storage/plugin_storage.hpp"
#include "kiln/storage/remote_settings_text.hpp"
#include "kiln/util/hash.hpp"
#include "redis_fixture.hpp"

namespace kiln::storage {
namespace {

// Whether `text` contains `part`, saying both when not.
::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) {
    return ::testing::AssertionSuccess() << "\"" << text << "\" contains \"" << part << "\"";
  }
  return ::testing::AssertionFailure() << "\"" << text << "\" lacks \"" << part << "\"";
}

Key key_of(std::string_view text, EntryKind kind = EntryKind::result) {
  return Key{util::Hasher().update(text).finish(), kind};
}

RedisSettings settings_for(std::string url) {
  RedisSettings settings;
  settings.url = std::move(url);
  settings.common.connect_timeout_ms = 2000;
  settings.common.request_timeout_ms = 2000;
  return settings;
}

std::string tcp_url(int port, std::string_view userinfo = "", std::string_view path = "") {
  std::string url = "redis://";
  if (!userinfo.empty()) {
    url += std::string(userinfo) + "@";
  }
  return url + "127.0.0.1:" + std::to_string(port) + std::string(path);
}

// --- Error replies -------------------------------------------------------

TEST(RedisErrorReplyTest, ClassifiedOnceFromTheReply) {
  EXPECT_EQ(classify_redis_error("ERR unknown command 'GETEX', with args beginning with: 'k' "),
            RedisErrorReply::unknown_command);
  EXPECT_EQ(classify_redis_error("ERR unknown command `GETEX`, with args beginning with: "),
            RedisErrorReply::unknown_command);
  EXPECT_EQ(classify_redis_error("WRONGPASS invalid username-password pair or user is disabled."),
            RedisErrorReply::wrong_password);
  EXPECT_EQ(classify_redis_error("ERR invalid password"), RedisErrorReply::wrong_password);
  EXPECT_EQ(classify_redis_error("NOAUTH Authentication required."), RedisErrorReply::no_auth);
  EXPECT_EQ(classify_redis_error("NOPERM this user has no permissions to run the 'set' command"),
            RedisErrorReply::no_permission);
  EXPECT_EQ(classify_redis_error("ERR DB index is out of range"), RedisErrorReply::other);
  // Only the server's reply is classified: a message that merely mentions
  // the words elsewhere is not an unknown command.
  EXPECT_EQ(classify_redis_error("OOM command not allowed (unknown command?)"),
            RedisErrorReply::other);
}

// --- Against a real redis-server -----------------------------------------

class RedisStorageTest : public ::testing::Test {
 protected:
  RedisSettings settings(std::string_view userinfo = "", std::string_view path = "") const {
    return settings_for(tcp_url(m_server.port(), userinfo, path));
  }

  test::RedisServer m_server;
};

TEST_F(RedisStorageTest, PutGetExistsRemove) {
  RedisStorage storage(settings());
  EXPECT_EQ(storage.name(), "redis");
  Key key = key_of("a");
  ASSERT_TRUE(storage.put(key, "value of a"));

  auto value = storage.get(key);
  ASSERT_TRUE(value) << storage.last_error();
  EXPECT_EQ(*value, "value of a");
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists);
  EXPECT_TRUE(*exists);

  ASSERT_TRUE(storage.put(key, "new value"));
  EXPECT_EQ(storage.get(key).value_or(""), "new value");

  ASSERT_TRUE(storage.remove(key));
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
  EXPECT_FALSE(storage.exists(key).value_or(true));
  EXPECT_EQ(storage.last_error(), "");
}

TEST_F(RedisStorageTest, MissingKeyIsNotFound) {
  RedisStorage storage(settings());
  Key key = key_of("missing");
  auto value = storage.get(key);
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::not_found);
  auto exists = storage.exists(key);
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);
  auto removed = storage.remove(key);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error(), Failure::not_found);
  EXPECT_EQ(storage.last_error(), "");
}

TEST_F(RedisStorageTest, ResultAndManifestAreDistinctKeys) {
  RedisStorage storage(settings());
  Key result = key_of("x", EntryKind::result);
  Key manifest = key_of("x", EntryKind::manifest);
  ASSERT_TRUE(storage.put(result, "result"));
  ASSERT_TRUE(storage.put(manifest, "manifest"));
  EXPECT_EQ(storage.get(result).value_or(""), "result");
  EXPECT_EQ(storage.get(manifest).value_or(""), "manifest");
}

TEST_F(RedisStorageTest, KeyLayoutIsPrefixPlusName) {
  RedisSettings s = settings();
  s.key_prefix = "kiln:";
  RedisStorage storage(s);
  Key key = key_of("layout");
  ASSERT_TRUE(storage.put(key, "payload"));

  const std::string expected_key = "kiln:" + key.digest.to_hex() + "R";
  EXPECT_EQ(storage.redis_key(key), expected_key);
  test::RawReply keys = m_server.command({"KEYS", "*"});
  ASSERT_EQ(keys.type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(keys.elements, std::vector<std::string>{expected_key});
  test::RawReply value = m_server.command({"GET", expected_key});
  ASSERT_EQ(value.type, REDIS_REPLY_STRING);
  EXPECT_EQ(value.text, "payload");

  // A value put by someone else under the layout is found.
  Key other = key_of("other", EntryKind::manifest);
  m_server.command({"SET", "kiln:" + other.digest.to_hex() + "M", "from outside"});
  EXPECT_EQ(storage.get(other).value_or(""), "from outside");
}

TEST_F(RedisStorageTest, NoPrefixMeansPlainName) {
  RedisStorage storage(settings());
  Key key = key_of("plain");
  ASSERT_TRUE(storage.put(key, "v"));
  EXPECT_EQ(m_server.command({"GET", key.name()}).text, "v");
}

TEST_F(RedisStorageTest, DatabaseNumberIsSelected) {
  RedisStorage storage(settings("", "/3"));
  Key key = key_of("db");
  ASSERT_TRUE(storage.put(key, "in db 3")) << storage.last_error();
  EXPECT_EQ(m_server.command({"GET", key.name()}, 3).text, "in db 3");
  EXPECT_EQ(m_server.command({"DBSIZE"}, 0).integer, 0);
  EXPECT_EQ(storage.get(key).value_or(""), "in db 3");
}

TEST_F(RedisStorageTest, DatabaseOutOfRangeIsAnError) {
  RedisStorage storage(settings("", "/99"));
  auto value = storage.get(key_of("db"));
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "rejected SELECT 99"));
}

TEST_F(RedisStorageTest, ExpirationSetsTtl) {
  RedisSettings s = settings();
  s.expiration_s = 1000;
  RedisStorage storage(s);
  Key key = key_of("ttl");
  ASSERT_TRUE(storage.put(key, "v"));
  long long ttl = m_server.command({"TTL", key.name()}).integer;
  EXPECT_GT(ttl, 990);
  EXPECT_LE(ttl, 1000);

  // A hit refreshes the TTL.
  m_server.command({"EXPIRE", key.name(), "10"});
  ASSERT_TRUE(storage.get(key));
  EXPECT_GT(m_server.command({"TTL", key.name()}).integer, 990);
}

TEST_F(RedisStorageTest, NoExpirationMeansNoTtl) {
  RedisStorage storage(settings());
  Key key = key_of("no ttl");
  ASSERT_TRUE(storage.put(key, "v"));
  EXPECT_EQ(m_server.command({"TTL", key.name()}).integer, -1);
}

TEST(RedisStorageOldServerTest, ExpirationRefreshWithoutGetex) {
  // As on Redis < 6.2: no GETEX.
  test::RedisServer server("", {"--rename-command", "GETEX", ""});
  RedisSettings s = settings_for(tcp_url(server.port()));
  s.expiration_s = 1000;
  RedisStorage storage(s);
  Key key = key_of("old");
  ASSERT_TRUE(storage.put(key, "v"));
  server.command({"EXPIRE", key.name(), "10"});
  for (int i = 0; i < 2; ++i) {
    auto value = storage.get(key);
    ASSERT_TRUE(value) << storage.last_error();
    EXPECT_EQ(*value, "v");
    EXPECT_GT(server.command({"TTL", key.name()}).integer, 990);
    server.command({"EXPIRE", key.name(), "10"});
  }
  EXPECT_EQ(storage.get(key_of("missing")).error(), Failure::not_found);
  EXPECT_EQ(storage.last_error(), "");
}

TEST_F(RedisStorageTest, ReadOnlyDoesNotWrite) {
  Key key = key_of("ro");
  m_server.command({"SET", key.name(), "stored"});
  RedisSettings s = settings();
  s.common.read_only = true;
  s.expiration_s = 1000;
  RedisStorage storage(s);

  auto put = storage.put(key_of("new"), "v");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "read-only"));
  EXPECT_FALSE(storage.remove(key));
  EXPECT_EQ(m_server.command({"DBSIZE"}).integer, 1);

  EXPECT_EQ(storage.get(key).value_or(""), "stored");
  EXPECT_EQ(m_server.command({"TTL", key.name()}).integer, -1);  // not refreshed
  EXPECT_TRUE(storage.exists(key).value_or(false));
}

TEST_F(RedisStorageTest, LargeValueRoundTrip) {
  RedisStorage storage(settings());
  std::string value(5 * 1024 * 1024, '\0');
  for (size_t i = 0; i < value.size(); ++i) {
    value[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  Key key = key_of("large");
  ASSERT_TRUE(storage.put(key, value)) << storage.last_error();
  auto back = storage.get(key);
  ASSERT_TRUE(back) << storage.last_error();
  EXPECT_TRUE(*back == value);
  EXPECT_EQ(m_server.command({"STRLEN", key.name()}).integer, 5 * 1024 * 1024);
}

TEST_F(RedisStorageTest, BinaryValueWithNulBytes) {
  RedisStorage storage(settings());
  std::string value;
  for (int i = 0; i < 512; ++i) {
    value += static_cast<char>(i % 256);
  }
  value += std::string("\0\r\n\0$-1\r\n", 10);
  Key key = key_of("binary");
  ASSERT_TRUE(storage.put(key, value));
  auto back = storage.get(key);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, value);
  EXPECT_EQ(m_server.command({"GET", key.name()}).text, value);

  ASSERT_TRUE(storage.put(key, ""));  // empty value: present, not a miss
  EXPECT_EQ(storage.get(key).value_or("x"), "");
}

TEST_F(RedisStorageTest, KeyOfAnotherTypeIsAnErrorNotACrash) {
  RedisStorage storage(settings());
  Key key = key_of("list");
  m_server.command({"RPUSH", key.name(), "a", "b"});
  auto value = storage.get(key);
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "WRONGTYPE"));
  EXPECT_TRUE(storage.exists(key).value_or(false));  // the connection is still good
  ASSERT_TRUE(storage.put(key, "now a string"));
  EXPECT_EQ(storage.get(key).value_or(""), "now a string");
}

TEST_F(RedisStorageTest, UnixSocket) {
  RedisStorage storage(settings_for("unix://" + m_server.socket_path() + "?db=2"));
  Key key = key_of("unix");
  ASSERT_TRUE(storage.put(key, "via socket")) << storage.last_error();
  EXPECT_EQ(m_server.command({"GET", key.name()}, 2).text, "via socket");
  EXPECT_EQ(storage.get(key).value_or(""), "via socket");
}

TEST_F(RedisStorageTest, ServerKilledThenRestarted) {
  RedisStorage storage(settings());
  Key key = key_of("restart");
  ASSERT_TRUE(storage.put(key, "v"));

  m_server.stop();
  auto value = storage.get(key);
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(),
                       "cannot connect to Redis at 127.0.0.1:" + std::to_string(m_server.port())));
  EXPECT_TRUE(contains(storage.last_error(), "KILN_REDIS_ENDPOINT"));
  EXPECT_FALSE(storage.put(key, "v"));

  m_server.start();  // same port, empty
  EXPECT_EQ(storage.get(key).error(), Failure::not_found);
  ASSERT_TRUE(storage.put(key, "again")) << storage.last_error();
  EXPECT_EQ(storage.get(key).value_or(""), "again");
}

TEST_F(RedisStorageTest, StaleConnectionIsRetriedOnce) {
  RedisStorage storage(settings());
  Key key = key_of("stale");
  ASSERT_TRUE(storage.put(key, "v"));
  // The connection is kept; the server goes away and comes back in between.
  m_server.stop();
  m_server.start();
  ASSERT_TRUE(storage.put(key, "after restart")) << storage.last_error();
  EXPECT_EQ(m_server.command({"GET", key.name()}).text, "after restart");
}

TEST_F(RedisStorageTest, LargePutToAClosedConnectionDoesNotRaiseSigpipe) {
  RedisStorage storage(settings());
  Key key = key_of("sigpipe");
  ASSERT_TRUE(storage.put(key, "v"));
  m_server.stop();
  // Writing 5 MB to the dead connection fails with EPIPE (SIGPIPE blocked),
  // the retry finds nobody listening.
  auto put = storage.put(key, std::string(5 * 1024 * 1024, 'x'));
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::error);
  m_server.start();
  ASSERT_TRUE(storage.put(key, std::string(5 * 1024 * 1024, 'y'))) << storage.last_error();
  m_server.stop();
  m_server.start();
  ASSERT_TRUE(storage.put(key, std::string(5 * 1024 * 1024, 'z'))) << storage.last_error();
  EXPECT_EQ(m_server.command({"STRLEN", key.name()}).integer, 5 * 1024 * 1024);
}

TEST_F(RedisStorageTest, ConnectionClosedByServerIsRetried) {
  RedisStorage storage(settings());
  Key key = key_of("killed client");
  ASSERT_TRUE(storage.put(key, "v"));
  m_server.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  EXPECT_EQ(storage.get(key).value_or(""), "v");
}

// --- In-flight leases ----------------------------------------------------

TEST_F(RedisStorageTest, LeaseHasOneHolderUntilReleased) {
  using namespace std::chrono_literals;
  RedisStorage a(settings());
  RedisStorage b(settings());
  Key key = key_of("lease", EntryKind::manifest);
  ASSERT_TRUE(a.supports_leases());
  EXPECT_EQ(b.lease_held(key).value_or(true), false) << b.last_error();

  auto taken = a.acquire_lease(key, "host-a:1:x", 30s);
  ASSERT_TRUE(taken) << a.last_error();
  EXPECT_TRUE(*taken);
  EXPECT_EQ(a.acquire_lease(key, "host-a:1:x", 30s).value_or(false), true) << "a holds it already";
  taken = b.acquire_lease(key, "host-b:2:y", 30s);
  ASSERT_TRUE(taken) << b.last_error();
  EXPECT_FALSE(*taken);
  EXPECT_EQ(b.lease_held(key).value_or(false), true);
  EXPECT_EQ(b.lease_held(key_of("no lease here", EntryKind::manifest)).value_or(true), false);

  // Only the holder ends it.
  ASSERT_TRUE(b.release_lease(key, "host-b:2:y")) << b.last_error();
  EXPECT_EQ(b.lease_held(key).value_or(false), true);
  EXPECT_EQ(b.acquire_lease(key, "host-b:2:y", 30s).value_or(true), false);
  ASSERT_TRUE(a.release_lease(key, "host-a:1:x")) << a.last_error();
  EXPECT_EQ(b.lease_held(key).value_or(true), false);
  ASSERT_TRUE(a.release_lease(key, "host-a:1:x")) << "releasing a lease that is gone is no failure";

  EXPECT_EQ(b.acquire_lease(key, "host-b:2:y", 30s).value_or(false), true);
  EXPECT_EQ(a.acquire_lease(key, "host-a:1:x", 30s).value_or(true), false);
  ASSERT_TRUE(b.release_lease(key, "host-b:2:y"));
  EXPECT_EQ(a.last_error(), "");
  EXPECT_EQ(b.last_error(), "");
}

TEST_F(RedisStorageTest, ExpiredLeaseCanBeTakenByAnother) {
  using namespace std::chrono_literals;
  RedisStorage a(settings());
  RedisStorage b(settings());
  Key key = key_of("lease expiry", EntryKind::manifest);
  ASSERT_EQ(a.acquire_lease(key, "a", 200ms).value_or(false), true) << a.last_error();
  EXPECT_EQ(b.acquire_lease(key, "b", 200ms).value_or(true), false);
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(b.lease_held(key).value_or(true), false);
  EXPECT_EQ(b.acquire_lease(key, "b", 10s).value_or(false), true) << b.last_error();
  // The first holder, late, does not end the new holder's lease.
  ASSERT_TRUE(a.release_lease(key, "a")) << a.last_error();
  EXPECT_EQ(a.lease_held(key).value_or(false), true);
  ASSERT_TRUE(b.release_lease(key, "b"));
}

TEST_F(RedisStorageTest, LeaseKeyLayout) {
  using namespace std::chrono_literals;
  RedisSettings s = settings();
  s.key_prefix = "kiln:";
  RedisStorage storage(s);
  Key key = key_of("lease layout", EntryKind::manifest);
  const std::string lease_key = "kiln:lease:" + key.name();
  EXPECT_EQ(storage.lease_key(key), lease_key);
  ASSERT_EQ(storage.acquire_lease(key, "host:42:nonce", 60s).value_or(false), true)
      << storage.last_error();
  EXPECT_EQ(storage.exists(key).value_or(true), false) << "a lease is not an entry";
  test::RawReply keys = m_server.command({"KEYS", "*"});
  EXPECT_EQ(keys.elements, std::vector<std::string>{lease_key});
  EXPECT_EQ(m_server.command({"GET", lease_key}).text, "host:42:nonce");
  long long pttl = m_server.command({"PTTL", lease_key}).integer;
  EXPECT_GT(pttl, 50000);
  EXPECT_LE(pttl, 60000);
  // An entry under the same key does not disturb the lease, nor it the entry.
  ASSERT_TRUE(storage.put(key, "manifest"));
  EXPECT_EQ(storage.lease_held(key).value_or(false), true);
  ASSERT_TRUE(storage.release_lease(key, "host:42:nonce"));
  EXPECT_EQ(storage.get(key).value_or(""), "manifest");
  EXPECT_EQ(m_server.command({"EXISTS", lease_key}).integer, 0);
}

TEST_F(RedisStorageTest, ReadOnlyTakesNoLease) {
  using namespace std::chrono_literals;
  RedisSettings s = settings();
  s.common.read_only = true;
  RedisStorage storage(s);
  Key key = key_of("ro lease", EntryKind::manifest);
  EXPECT_EQ(storage.acquire_lease(key, "a", 5s).error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "read-only"));
  EXPECT_EQ(storage.release_lease(key, "a").error(), Failure::error);
  EXPECT_EQ(storage.lease_held(key).value_or(true), false);
  EXPECT_EQ(m_server.command({"DBSIZE"}).integer, 0);
}

TEST_F(RedisStorageTest, LeaseThroughThePlugin) {
  using namespace std::chrono_literals;
  auto opened = open_remote_storage("redis", to_text(settings()), KILN_PLUGIN_DIR);
  ASSERT_TRUE(opened) << opened.error();
  Storage& plugin = **opened;
  RedisStorage other(settings());
  Key key = key_of("lease through the plugin", EntryKind::manifest);
  ASSERT_TRUE(plugin.supports_leases());
  EXPECT_EQ(plugin.lease_held(key).value_or(true), false) << plugin.last_error();
  EXPECT_EQ(plugin.acquire_lease(key, "plugin:1:a", 30s).value_or(false), true)
      << plugin.last_error();
  EXPECT_EQ(other.acquire_lease(key, "other:2:b", 30s).value_or(true), false);
  EXPECT_EQ(plugin.lease_held(key).value_or(false), true);
  ASSERT_TRUE(plugin.release_lease(key, "other:2:b")) << plugin.last_error();
  EXPECT_EQ(other.lease_held(key).value_or(false), true);
  ASSERT_TRUE(plugin.release_lease(key, "plugin:1:a")) << plugin.last_error();
  EXPECT_EQ(other.lease_held(key).value_or(true), false);
  EXPECT_EQ(other.acquire_lease(key, "other:2:b", 30s).value_or(false), true);
}

TEST(RedisStorageFailureTest, ConnectionRefused) {
  int port = test::free_tcp_port();
  RedisStorage storage(settings_for(tcp_url(port)));
  auto value = storage.get(key_of("x"));
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(),
                       "cannot connect to Redis at 127.0.0.1:" + std::to_string(port)));
  EXPECT_TRUE(contains(storage.last_error(), "(check KILN_REDIS_ENDPOINT)"));
}

TEST(RedisStorageFailureTest, InvalidUrl) {
  RedisStorage storage(settings_for("redis://:hunter2@host:port"));
  for (int i = 0; i < 2; ++i) {
    auto value = storage.get(key_of("x"));
    ASSERT_FALSE(value);
    EXPECT_EQ(value.error(), Failure::error);
    EXPECT_TRUE(contains(storage.last_error(), "invalid Redis URL"));
    EXPECT_FALSE(contains(storage.last_error(), "hunter2"));
  }
}

TEST(RedisStorageFailureTest, ServerThatNeverAnswersTimesOut) {
  test::Listener silent;  // the kernel completes the handshake; nobody answers
  RedisSettings s = settings_for(tcp_url(silent.port()));
  s.common.request_timeout_ms = 300;
  RedisStorage storage(s);
  auto start = std::chrono::steady_clock::now();
  auto value = storage.get(key_of("x"));
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::timeout);
  EXPECT_TRUE(contains(storage.last_error(), "did not answer GET within 300 ms"));
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1300));

  // Also when logging in.
  RedisSettings with_password = settings_for(tcp_url(silent.port(), ":pw"));
  with_password.common.request_timeout_ms = 200;
  RedisStorage storage2(with_password);
  EXPECT_EQ(storage2.exists(key_of("x")).error(), Failure::timeout);
}

TEST(RedisStorageFailureTest, ConnectTimeout) {
  test::Listener full(0);
  full.fill_backlog();  // further SYNs are dropped
  RedisSettings s = settings_for(tcp_url(full.port()));
  s.common.connect_timeout_ms = 300;
  RedisStorage storage(s);
  auto start = std::chrono::steady_clock::now();
  auto put = storage.put(key_of("x"), "v");
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::timeout);
  EXPECT_TRUE(contains(storage.last_error(), "timed out after 300 ms connecting"));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1300));
}

TEST(RedisStorageFailureTest, NotARedisServer) {
  test::JunkServer http("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  RedisStorage storage(settings_for(tcp_url(http.port())));
  auto value = storage.get(key_of("x"));
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::error);
  EXPECT_TRUE(contains(storage.last_error(), "Redis at 127.0.0.1:" + std::to_string(http.port())));
}

// --- Passwords -----------------------------------------------------------

TEST(RedisStoragePasswordTest, RightPassword) {
  test::RedisServer server("secret");
  RedisStorage storage(settings_for(tcp_url(server.port(), ":secret")));
  Key key = key_of("auth");
  ASSERT_TRUE(storage.put(key, "v")) << storage.last_error();
  EXPECT_EQ(storage.get(key).value_or(""), "v");
  EXPECT_EQ(server.command({"GET", key.name()}).text, "v");
}

TEST(RedisStoragePasswordTest, WrongPassword) {
  test::RedisServer server("secret");
  RedisStorage storage(settings_for(tcp_url(server.port(), ":wrong")));
  auto value = storage.get(key_of("auth"));
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "Redis at 127.0.0.1:" + std::to_string(server.port()) +
                                                 " rejected the password"));
  EXPECT_TRUE(contains(storage.last_error(), "KILN_REDIS_ENDPOINT"));
  EXPECT_FALSE(contains(storage.last_error(), "wrong"));
  EXPECT_EQ(storage.put(key_of("auth"), "v").error(), Failure::access_denied);
}

TEST(RedisStoragePasswordTest, MissingPassword) {
  test::RedisServer server("secret");
  RedisStorage storage(settings_for(tcp_url(server.port())));
  auto put = storage.put(key_of("auth"), "v");
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "requires a password"));
}

TEST(RedisStoragePasswordTest, AclUser) {
  test::RedisServer server("secret");
  server.command({"ACL", "SETUSER", "builder", "on", ">b-pass", "~kiln:*", "+@all"});
  RedisSettings s = settings_for(tcp_url(server.port(), "builder:b-pass"));
  s.key_prefix = "kiln:";
  RedisStorage storage(s);
  Key key = key_of("acl");
  ASSERT_TRUE(storage.put(key, "v")) << storage.last_error();
  EXPECT_EQ(storage.get(key).value_or(""), "v");

  RedisStorage wrong(settings_for(tcp_url(server.port(), "builder:nope")));
  EXPECT_EQ(wrong.get(key).error(), Failure::access_denied);
  EXPECT_TRUE(contains(wrong.last_error(), "rejected the password"));

  // Keys outside the user's pattern: NOPERM.
  RedisStorage outside(settings_for(tcp_url(server.port(), "builder:b-pass")));
  EXPECT_EQ(outside.get(key).error(), Failure::access_denied);
  EXPECT_TRUE(contains(outside.last_error(), "denied GET"));
}

TEST(RedisStoragePasswordTest, AclWithoutScriptingCannotReleaseLeases) {
  using namespace std::chrono_literals;
  test::RedisServer server("secret");
  server.command({"ACL", "SETUSER", "builder", "on", ">b-pass", "~kiln:*", "+@all", "-@scripting"});
  RedisSettings s = settings_for(tcp_url(server.port(), "builder:b-pass"));
  s.key_prefix = "kiln:";
  RedisStorage storage(s);
  Key key = key_of("acl lease", EntryKind::manifest);
  EXPECT_EQ(storage.acquire_lease(key, "a", 30s).value_or(false), true) << storage.last_error();
  EXPECT_EQ(storage.release_lease(key, "a").error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "denied EVAL"));
  EXPECT_EQ(storage.lease_held(key).value_or(false), true);
}

TEST(RedisStoragePasswordTest, PasswordForServerWithoutOne) {
  test::RedisServer server;
  RedisStorage storage(settings_for(tcp_url(server.port(), ":unneeded")));
  auto value = storage.get(key_of("x"));
  ASSERT_FALSE(value);
  EXPECT_EQ(value.error(), Failure::access_denied);
  EXPECT_TRUE(contains(storage.last_error(), "rejected the password"));
}

}  // namespace
}  // namespace kiln::storage
