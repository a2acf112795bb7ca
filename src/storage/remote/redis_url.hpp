#pragma once

#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::storage {

// Where a Redis server is and how to log in, parsed from RedisSettings::url.
struct RedisEndpoint {
  std::string host;  // TCP host, IPv6 without brackets; empty with socket_path
  int port = 6379;
  std::string socket_path;  // Unix domain socket; empty for TCP
  std::string user;         // empty: AUTH <password> (the default user)
  std::string password;     // empty: no AUTH
  int db = 0;               // SELECTed after connecting when not 0

  // "host:port" (IPv6 in brackets) or "unix:<path>", for messages. Never
  // includes the password.
  std::string display() const;
};

// Parses (with net::Url, UserinfoRule::lenient_password)
//   redis://[[user]:password@]host[:port][/db][?query]
//   unix://[[user]:password@]/path/to.sock[?query]
// where user and password are percent-decoded (the user info ends at the
// last '@', so a password may also hold '@', ':' and '/' unescaped; a user
// without a password is ignored, as by redis-rs), an IPv6 host is written in
// brackets, the port defaults to 6379, db to 0, and query is &-separated
// db=N, user=U, password=P (also pass=P, as the redis-rs crate spells it).
// "redis+unix://" is accepted for "unix://". Returns a sentence for the user
// on a malformed URL or an unsupported scheme (rediss://: no TLS support).
expected<RedisEndpoint, std::string> parse_redis_url(std::string_view url);

}  // namespace kiln::storage
