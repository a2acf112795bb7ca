#include "kiln/net/url.hpp"

#include <gtest/gtest.h>

namespace kiln::net {
namespace {

TEST(UrlTest, SplitsEveryPart) {
  auto url = Url::parse("HTTP://user:pa%40ss@Example.com:8080/a/b%2Fc?x=1&y=2#frag");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->scheme, "http");
  EXPECT_TRUE(url->has_userinfo);
  EXPECT_EQ(url->userinfo, "user:pa%40ss");
  EXPECT_EQ(url->host, "Example.com");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->path, "/a/b%2Fc");
  EXPECT_TRUE(url->has_query);
  EXPECT_EQ(url->query, "x=1&y=2");
  EXPECT_EQ(url->target(), "/a/b%2Fc?x=1&y=2");
  EXPECT_EQ(url->host_port(80), "Example.com:8080");
}

TEST(UrlTest, DefaultsAndEmptyParts) {
  auto url = Url::parse("http://host");
  ASSERT_TRUE(url);
  EXPECT_FALSE(url->has_userinfo);
  EXPECT_EQ(url->port, 0);
  EXPECT_EQ(url->port_or(80), 80);
  EXPECT_EQ(url->path, "");
  EXPECT_FALSE(url->has_query);
  EXPECT_EQ(url->target(), "/");

  auto query_only = Url::parse("http://host?q");
  ASSERT_TRUE(query_only);
  EXPECT_EQ(query_only->host, "host");
  EXPECT_EQ(query_only->target(), "/?q");

  auto no_host = Url::parse("unix:///run/redis.sock");
  ASSERT_TRUE(no_host);
  EXPECT_EQ(no_host->host, "");
  EXPECT_EQ(no_host->path, "/run/redis.sock");
}

TEST(UrlTest, Ipv6Literals) {
  auto url = Url::parse("http://[::1]:6390/x");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "::1");
  EXPECT_TRUE(url->ipv6());
  EXPECT_EQ(url->host_for_uri(), "[::1]");
  EXPECT_EQ(url->host_port(80), "[::1]:6390");
  EXPECT_EQ(Url::parse("http://[fe80::1]")->host_port(80), "[fe80::1]:80");

  EXPECT_EQ(Url::parse("http://[::1/x").error(), UrlError::bad_ipv6_host);
  EXPECT_EQ(Url::parse("http://[::1]x/").error(), UrlError::bad_ipv6_host);
  EXPECT_EQ(Url::parse("http://[::1]:/").error(), UrlError::bad_port);
}

TEST(UrlTest, RejectsBadSchemesAndPorts) {
  EXPECT_EQ(Url::parse("host:80/x").error(), UrlError::no_scheme);
  EXPECT_EQ(Url::parse("://host").error(), UrlError::bad_scheme);
  EXPECT_EQ(Url::parse("ht tp://host").error(), UrlError::bad_scheme);
  EXPECT_TRUE(Url::parse("redis+unix:///s"));
  for (const char* bad : {"http://h:", "http://h:0", "http://h:65536", "http://h:-1",
                          "http://h:+80", "http://h:8o", "http://h:99999999999999999999"}) {
    auto url = Url::parse(bad);
    ASSERT_FALSE(url) << bad;
    EXPECT_EQ(url.error(), UrlError::bad_port) << bad;
  }
  EXPECT_EQ(Url::parse("http://h:65535")->port, 65535);
  EXPECT_FALSE(describe(UrlError::bad_port).empty());
}

TEST(UrlTest, UserinfoEndsInTheAuthorityByDefault) {
  auto url = Url::parse("http://host/path@with/at");
  ASSERT_TRUE(url);
  EXPECT_FALSE(url->has_userinfo);
  EXPECT_EQ(url->host, "host");
  EXPECT_EQ(url->path, "/path@with/at");

  auto two = Url::parse("http://a@b@host:1/");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->userinfo, "a@b");
  EXPECT_EQ(two->host, "host");
}

TEST(UrlTest, LenientUserinfoKeepsUnescapedPasswords) {
  auto url = Url::parse("redis://:p@ss:w/rd@host:7000/", UserinfoRule::lenient_password);
  ASSERT_TRUE(url);
  EXPECT_EQ(url->userinfo, ":p@ss:w/rd");
  EXPECT_EQ(url->host, "host");
  EXPECT_EQ(url->port, 7000);
  EXPECT_EQ(url->path, "/");

  auto socket = Url::parse("unix://u:pw@/tmp/r@s.sock?db=1", UserinfoRule::lenient_socket);
  ASSERT_TRUE(socket);
  EXPECT_EQ(socket->userinfo, "u:pw");
  EXPECT_EQ(socket->host, "");
  EXPECT_EQ(socket->path, "/tmp/r@s.sock");
  EXPECT_EQ(socket->query, "db=1");
}

TEST(UrlTest, ControlCharactersAndSpacesCannotReachARequestLine) {
  EXPECT_EQ(Url::parse("http://host/a\r\nX-Injected: 1").error(), UrlError::bad_character);
  EXPECT_EQ(Url::parse("http://ho st/").error(), UrlError::bad_character);
  EXPECT_EQ(Url::parse("http://host/a b").error(), UrlError::bad_character);
  EXPECT_EQ(Url::parse("http://host/?q=\n").error(), UrlError::bad_character);
  EXPECT_EQ(Url::parse("http://host\x7f/").error(), UrlError::bad_character);
  // A space in a password is the user's business (it never reaches a request line).
  auto spaced = Url::parse("redis://:a b@host", UserinfoRule::lenient_password);
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->userinfo, ":a b");
}

}  // namespace
}  // namespace kiln::net
