// parse_redis_url (RedisStorage against a real server: tests/remote/redis_storage_test.cpp).
#include "kiln/storage/remote/redis_url.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::storage {
namespace {

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(RedisUrlTest, HostOnlyDefaults) {
  auto endpoint = parse_redis_url("redis://cache.example.com");
  ASSERT_TRUE(endpoint) << endpoint.error();
  EXPECT_EQ(endpoint->host, "cache.example.com");
  EXPECT_EQ(endpoint->port, 6379);
  EXPECT_EQ(endpoint->db, 0);
  EXPECT_EQ(endpoint->user, "");
  EXPECT_EQ(endpoint->password, "");
  EXPECT_EQ(endpoint->display(), "cache.example.com:6379");
}

TEST(RedisUrlTest, AllParts) {
  auto endpoint = parse_redis_url("redis://alice:s3cr%40t@10.0.0.7:6380/5");
  ASSERT_TRUE(endpoint) << endpoint.error();
  EXPECT_EQ(endpoint->host, "10.0.0.7");
  EXPECT_EQ(endpoint->port, 6380);
  EXPECT_EQ(endpoint->db, 5);
  EXPECT_EQ(endpoint->user, "alice");
  EXPECT_EQ(endpoint->password, "s3cr@t");
}

TEST(RedisUrlTest, PasswordOnlyAndUnescapedSpecials) {
  auto endpoint = parse_redis_url("REDIS://:p@ss:w/rd@host:7000/");
  ASSERT_TRUE(endpoint) << endpoint.error();
  EXPECT_EQ(endpoint->user, "");
  EXPECT_EQ(endpoint->password, "p@ss:w/rd");
  EXPECT_EQ(endpoint->host, "host");
  EXPECT_EQ(endpoint->port, 7000);
  EXPECT_EQ(endpoint->db, 0);
}

TEST(RedisUrlTest, Ipv6AndQuery) {
  auto endpoint = parse_redis_url("redis://[::1]:6390?db=2&password=x%26y&user=bob");
  ASSERT_TRUE(endpoint) << endpoint.error();
  EXPECT_EQ(endpoint->host, "::1");
  EXPECT_EQ(endpoint->port, 6390);
  EXPECT_EQ(endpoint->db, 2);
  EXPECT_EQ(endpoint->password, "x&y");
  EXPECT_EQ(endpoint->user, "bob");
  EXPECT_EQ(endpoint->display(), "[::1]:6390");
}

TEST(RedisUrlTest, UnixSocket) {
  auto endpoint = parse_redis_url("unix:///run/redis/redis.sock?db=4&pass=pw");
  ASSERT_TRUE(endpoint) << endpoint.error();
  EXPECT_EQ(endpoint->socket_path, "/run/redis/redis.sock");
  EXPECT_EQ(endpoint->db, 4);
  EXPECT_EQ(endpoint->password, "pw");
  EXPECT_EQ(endpoint->display(), "unix:/run/redis/redis.sock");

  auto with_auth = parse_redis_url("redis+unix://u:pw@/tmp/r.sock");
  ASSERT_TRUE(with_auth) << with_auth.error();
  EXPECT_EQ(with_auth->socket_path, "/tmp/r.sock");
  EXPECT_EQ(with_auth->user, "u");
  EXPECT_EQ(with_auth->password, "pw");
}

// Passwords and socket paths that parsed before src/net (review of issue 8).
TEST(RedisUrlTest, HashAndAtSlashInPasswordsAndAtInSocketPaths) {
  auto hash = parse_redis_url("redis://:p#ss@cache:6379");
  ASSERT_TRUE(hash) << hash.error();
  EXPECT_EQ(hash->password, "p#ss");
  EXPECT_EQ(hash->host, "cache");
  EXPECT_EQ(hash->port, 6379);

  auto at_slash = parse_redis_url("redis://:a@/b@host");
  ASSERT_TRUE(at_slash) << at_slash.error();
  EXPECT_EQ(at_slash->password, "a@/b");
  EXPECT_EQ(at_slash->host, "host");

  auto socket = parse_redis_url("unix:///run/redis@6379.sock");
  ASSERT_TRUE(socket) << socket.error();
  EXPECT_EQ(socket->socket_path, "/run/redis@6379.sock");
  EXPECT_EQ(socket->password, "");
}

TEST(RedisUrlTest, Malformed) {
  for (const char* url : {"", "cache:6379", "http://host", "redis://", "redis://:pw@",
                          "redis://host:", "redis://host:0", "redis://host:65536",
                          "redis://host:12ab", "redis://host/x", "redis://host/-1", "redis://[::1",
                          "redis://[::1]x", "redis://host?colour=blue",
                          "redis://host/1?db=", "redis://u:%zz@host", "unix://relative.sock"}) {
    auto endpoint = parse_redis_url(url);
    EXPECT_FALSE(endpoint) << url;
  }
  auto tls = parse_redis_url("rediss://host");
  ASSERT_FALSE(tls);
  EXPECT_TRUE(contains(tls.error(), "TLS"));
}

TEST(RedisUrlTest, ErrorsDoNotShowThePassword) {
  auto endpoint = parse_redis_url("redis://:hunter2@host:bad");
  ASSERT_FALSE(endpoint);
  EXPECT_FALSE(contains(endpoint.error(), "hunter2"));
}

TEST(RedisUrlTest, BadEscapesAndPortsSayWhat) {
  auto escape = parse_redis_url("redis://u:%zz@host");
  ASSERT_FALSE(escape);
  EXPECT_TRUE(contains(escape.error(), "bad %-escape in the password")) << escape.error();
  auto port = parse_redis_url("redis://host:99999999999999999999");
  ASSERT_FALSE(port);
  EXPECT_TRUE(contains(port.error(), "port")) << port.error();
  auto socket_with_host = parse_redis_url("unix://host/path.sock");
  EXPECT_FALSE(socket_with_host);
}

}  // namespace
}  // namespace kiln::storage
