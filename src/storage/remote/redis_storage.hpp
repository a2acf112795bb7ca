#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/storage/remote/redis_url.hpp"
#include "kiln/storage/remote_settings.hpp"
#include "kiln/storage/storage.hpp"
#include "kiln/util/expected.hpp"

// hiredis types, kept out of this header (see redis_storage.cpp).
struct redisContext;
struct redisReply;

namespace kiln::storage {

// What an error reply of a Redis server says, classified once from its text
// where the reply arrives (WRONGPASS, NOAUTH, NOPERM prefixes; "ERR unknown
// command"), so that callers act on a value.
enum class RedisErrorReply {
  wrong_password,   // WRONGPASS, "invalid password", "invalid username-password"
  no_auth,          // NOAUTH: the server wants a password
  no_permission,    // NOPERM: the ACL denies the command
  unknown_command,  // ERR unknown command (a server without GETEX, a renamed command)
  other,
};

RedisErrorReply classify_redis_error(std::string_view message);

// The Redis level of the cache, over one blocking hiredis connection.
//
// Layout: every entry is one plain string key
//     <key_prefix><Key::name()>      e.g. "kiln:" + 64 hex digits + 'R' or 'M'
// holding the encoded entry bytes as is. Nothing is inserted between the
// prefix and the name, so key_prefix carries its own separator (as with
// sccache, whose Redis keys are plain names too). With expiration_s > 0 every
// put sets the key's TTL and every get of a present key refreshes it (GETEX,
// or GET + EXPIRE on servers older than 6.2), so keys in use do not expire;
// with read_only nothing is written or refreshed.
//
// In-flight leases are plain string keys too, apart from the entries:
//     <key_prefix>lease:<Key::name()>   holding the holder, with a TTL
// taken with SET NX PX (so that only one holder can create it and it expires
// by itself; when it exists, a GET tells whether this holder holds it
// already), ended with a compare-and-delete script (EVAL: only by its
// holder) and probed with EXISTS. With read_only no lease is taken or ended.
//
// The connection is opened on first use (connect_timeout_ms for the TCP
// connect; AUTH, then SELECT when db != 0) and reused. request_timeout_ms
// bounds each socket read or write (SO_RCVTIMEO/SO_SNDTIMEO), so a stalled
// server fails a request after about that long; a value transfer that keeps
// making progress is not cut off. After an I/O error or timeout the
// connection is dropped and the next call reconnects; a request on a reused
// connection that fails with a closed or reset connection (server restarted,
// idle connection closed) is retried once on a new one. Timeout values <= 0
// mean no timeout.
//
// Failures: not_found for a missing key (get, remove); timeout for a
// connect or request timeout; access_denied when the server refuses the
// credentials (NOAUTH, WRONGPASS, invalid password) or a command (NOPERM);
// error for everything else (connection refused, unknown host, malformed
// URL, error replies, replies of an unexpected type, writes with read_only).
// last_error() then says what happened in a sentence; it never contains the
// password.
//
// SIGPIPE is blocked in the calling thread while a request is on the wire
// (a write to a connection the server closed must fail, not kill kiln).
//
// Thread-compatible, not thread-safe (like every Storage).
class RedisStorage : public Storage {
 public:
  explicit RedisStorage(RedisSettings settings);
  ~RedisStorage() override;
  RedisStorage(const RedisStorage&) = delete;
  RedisStorage& operator=(const RedisStorage&) = delete;

  std::string_view name() const override { return "redis"; }
  expected<std::string, Failure> get(const Key& key) override;
  expected<void, Failure> get_to(const Key& key, const Sink& sink) override;
  expected<void, Failure> put(const Key& key, std::string_view value) override;
  expected<void, Failure> remove(const Key& key) override;
  expected<bool, Failure> exists(const Key& key) override;
  Error last_problem() const override { return m_error; }

  // The Redis key an entry is stored under: key_prefix + key.name().
  std::string redis_key(const Key& key) const;
  // The Redis key of the lease on `key`: key_prefix + "lease:" + key.name().
  std::string lease_key(const Key& key) const;

  expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                        std::chrono::milliseconds ttl) override;
  expected<void, Failure> release_lease(const Key& key, std::string_view holder) override;
  expected<bool, Failure> lease_held(const Key& key) override;
  bool supports_leases() const override { return true; }

 private:
  struct ReplyDeleter {
    void operator()(redisReply* reply) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  // Why a command got no usable reply: the Failure, and for an error reply
  // what the server said.
  struct CommandError {
    Failure failure = Failure::error;
    std::optional<RedisErrorReply> reply;  // empty: no error reply (I/O, protocol)
  };

  // Connects, logs in and selects the database unless already connected.
  expected<void, Failure> connect();
  // Sends one command and reads its reply, connecting first if needed. An
  // error reply is returned as a failure (see error_reply); any other reply
  // is the caller's to check.
  expected<Reply, CommandError> command(std::initializer_list<std::string_view> args);
  // One attempt of command() on the current connection.
  expected<Reply, CommandError> command_once(std::initializer_list<std::string_view> args,
                                             bool* retryable);
  // Classifies an error reply ("-WRONGPASS ...") and records it as m_error.
  CommandError error_reply(std::string_view command, std::string_view message);
  // Maps an I/O or protocol error of the connection to a Failure, records it
  // as m_error and drops the connection.
  Failure connection_failure(std::string_view doing, int saved_errno);
  Failure unexpected_reply(std::string_view command, const redisReply& reply);
  Failure refuse_write(std::string_view command);
  // Records a failure (the messages of this backend never name an entry).
  Failure fail(Failure failure, std::string message);
  void disconnect();

  RedisSettings m_settings;
  expected<RedisEndpoint, std::string> m_endpoint;
  std::string m_where;  // m_endpoint->display(), or the URL's scheme when malformed
  redisContext* m_context = nullptr;
  int m_replies_on_connection = 0;
  bool m_have_getex = true;  // cleared when the server does not know GETEX
  Error m_error;
};

}  // namespace kiln::storage
