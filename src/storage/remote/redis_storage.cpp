#include "kiln/storage/remote/redis_storage.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>
#include <vector>

#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

constexpr std::string_view k_fix_endpoint = "check KILN_REDIS_ENDPOINT";

timeval to_timeval(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(ms % 1000) * 1000;
  return tv;
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Whether a hiredis context error is a connect or request timeout: hiredis
// reports both as REDIS_ERR_IO with errno ETIMEDOUT (connect) or EAGAIN (a
// read or write that hit SO_RCVTIMEO/SO_SNDTIMEO).
bool is_timeout(int err, std::string_view reason, int saved_errno) {
  if (err != REDIS_ERR_IO) {
    return false;
  }
  return saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
         contains(reason, "timed out") || contains(reason, "temporarily unavailable");
}

std::string_view type_name(int type) {
  switch (type) {
    case REDIS_REPLY_STRING:
      return "string";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
  }
  return "unknown";
}

std::string_view reply_text(const redisReply& reply) {
  if (reply.str == nullptr) {
    return {};
  }
  return {reply.str, reply.len};
}

// Blocks SIGPIPE in this thread for its lifetime and discards a SIGPIPE raised
// meanwhile, so that writing to a connection the server has closed fails with
// EPIPE instead of killing the process. The process's signal dispositions are
// left alone.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    m_was_pending = sigismember(&pending, SIGPIPE) == 1;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &m_old_mask);
  }
  ~SigpipeGuard() {
    int saved_errno = errno;
    if (!m_was_pending) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        timespec zero{};
        while (sigtimedwait(&pipe, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &m_old_mask, nullptr);
    errno = saved_errno;
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t m_old_mask;
  bool m_was_pending = false;
};

}  // namespace

RedisErrorReply classify_redis_error(std::string_view message) {
  if (message.starts_with("WRONGPASS") || contains(message, "invalid password") ||
      contains(message, "invalid username-password")) {
    return RedisErrorReply::wrong_password;
  }
  if (message.starts_with("NOAUTH")) {
    return RedisErrorReply::no_auth;
  }
  if (message.starts_with("NOPERM")) {
    return RedisErrorReply::no_permission;
  }
  if (message.starts_with("ERR unknown command")) {
    return RedisErrorReply::unknown_command;
  }
  return RedisErrorReply::other;
}

void RedisStorage::ReplyDeleter::operator()(redisReply* reply) const {
  freeReplyObject(reply);
}

RedisStorage::RedisStorage(RedisSettings settings)
    : m_settings(std::move(settings)), m_endpoint(parse_redis_url(m_settings.url)) {
  m_where = m_endpoint ? m_endpoint->display() : std::string("(invalid URL)");
}

RedisStorage::~RedisStorage() {
  disconnect();
}

Failure RedisStorage::fail(Failure failure, std::string message) {
  m_error = Error::plain(failure, std::move(message));
  return failure;
}

std::string RedisStorage::redis_key(const Key& key) const {
  return m_settings.key_prefix + key.name();
}

std::string RedisStorage::lease_key(const Key& key) const {
  return m_settings.key_prefix + "lease:" + key.name();
}

void RedisStorage::disconnect() {
  if (m_context != nullptr) {
    redisFree(m_context);
    m_context = nullptr;
  }
}

expected<void, Failure> RedisStorage::connect() {
  if (m_context != nullptr) {
    return {};
  }
  if (!m_endpoint) {
    return unexpected(fail(Failure::error, "invalid Redis URL: " + m_endpoint.error() + " (" +
                                               std::string(k_fix_endpoint) + ")"));
  }
  const RedisEndpoint& endpoint = *m_endpoint;
  const int connect_ms = m_settings.common.connect_timeout_ms;
  errno = 0;
  redisContext* context = nullptr;
  if (!endpoint.socket_path.empty()) {
    context = connect_ms > 0 ? redisConnectUnixWithTimeout(endpoint.socket_path.c_str(),
                                                           to_timeval(connect_ms))
                             : redisConnectUnix(endpoint.socket_path.c_str());
  } else {
    context = connect_ms > 0 ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port,
                                                       to_timeval(connect_ms))
                             : redisConnect(endpoint.host.c_str(), endpoint.port);
  }
  const int saved_errno = errno;
  if (context == nullptr || context->err != 0) {
    std::string reason = context != nullptr ? context->errstr : "out of memory";
    bool timed_out = context != nullptr && is_timeout(context->err, reason, saved_errno);
    if (context != nullptr) {
      redisFree(context);
    }
    if (timed_out) {
      return unexpected(fail(Failure::timeout, "timed out after " + std::to_string(connect_ms) +
                                                   " ms connecting to Redis at " + m_where + " (" +
                                                   std::string(k_fix_endpoint) +
                                                   " and that the server is reachable)"));
    }
    return unexpected(fail(Failure::error, "cannot connect to Redis at " + m_where + ": " + reason +
                                               " (" + std::string(k_fix_endpoint) + ")"));
  }
  const int request_ms = m_settings.common.request_timeout_ms;
  if (request_ms > 0 && redisSetTimeout(context, to_timeval(request_ms)) != REDIS_OK) {
    redisFree(context);
    return unexpected(fail(
        Failure::error, "cannot set the request timeout on the connection to Redis at " + m_where));
  }
  m_context = context;
  m_replies_on_connection = 0;

  bool retryable = false;
  if (!endpoint.password.empty()) {
    auto reply = endpoint.user.empty()
                     ? command_once({"AUTH", endpoint.password}, &retryable)
                     : command_once({"AUTH", endpoint.user, endpoint.password}, &retryable);
    if (!reply) {
      disconnect();
      return unexpected(reply.error().failure);
    }
  }
  if (endpoint.db != 0) {
    auto reply = command_once({"SELECT", std::to_string(endpoint.db)}, &retryable);
    if (!reply) {
      disconnect();
      return unexpected(reply.error().failure);
    }
  }
  return {};
}

expected<RedisStorage::Reply, RedisStorage::CommandError> RedisStorage::command(
    std::initializer_list<std::string_view> args) {
  for (int attempt = 0;; ++attempt) {
    auto connected = connect();
    if (!connected) {
      return unexpected(CommandError{connected.error(), std::nullopt});
    }
    bool retryable = false;
    auto reply = command_once(args, &retryable);
    if (reply || !retryable || attempt > 0) {
      return reply;
    }
  }
}

expected<RedisStorage::Reply, RedisStorage::CommandError> RedisStorage::command_once(
    std::initializer_list<std::string_view> args, bool* retryable) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (std::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  std::string_view name = *args.begin();

  redisReply* raw = nullptr;
  int saved_errno = 0;
  {
    SigpipeGuard guard;
    errno = 0;
    raw = static_cast<redisReply*>(
        redisCommandArgv(m_context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    saved_errno = errno;
  }
  if (raw == nullptr) {
    // A reused connection that turns out closed or reset was most likely
    // closed by the server while idle (restart, idle timeout): worth one
    // retry on a new connection. A timeout is not.
    const int err = m_context->err;
    *retryable = m_replies_on_connection > 0 &&
                 (err == REDIS_ERR_EOF ||
                  (err == REDIS_ERR_IO && (saved_errno == ECONNRESET || saved_errno == EPIPE)));
    return unexpected(CommandError{connection_failure(name, saved_errno), std::nullopt});
  }
  ++m_replies_on_connection;
  Reply reply(raw);
  if (reply->type == REDIS_REPLY_ERROR) {
    return unexpected(error_reply(name, reply_text(*reply)));
  }
  return reply;
}

RedisStorage::CommandError RedisStorage::error_reply(std::string_view command,
                                                     std::string_view message) {
  const RedisErrorReply kind = classify_redis_error(message);
  const std::string server = "Redis at " + m_where;
  const std::string said = "\"" + std::string(message) + "\"";
  const RedisEndpoint& endpoint = *m_endpoint;
  auto failed = [&](Failure failure, std::string text) {
    return CommandError{fail(failure, std::move(text)), kind};
  };
  if (command == "AUTH" || kind == RedisErrorReply::wrong_password) {
    return failed(Failure::access_denied,
                  server + " rejected the password (" + said +
                      "; check the user and password in KILN_REDIS_ENDPOINT)");
  }
  if (kind == RedisErrorReply::no_auth) {
    return failed(Failure::access_denied,
                  endpoint.password.empty()
                      ? server + " requires a password (" + said +
                            "; give it in KILN_REDIS_ENDPOINT as redis://:password@host:port)"
                      : server + " rejected the password (" + said +
                            "; check the password in KILN_REDIS_ENDPOINT)");
  }
  if (kind == RedisErrorReply::no_permission) {
    return failed(Failure::access_denied,
                  server + " denied " + std::string(command) + " (" + said +
                      "; check the ACL of the user in KILN_REDIS_ENDPOINT)");
  }
  if (command == "SELECT") {
    return failed(Failure::error, server + " rejected SELECT " + std::to_string(endpoint.db) +
                                      " (" + said +
                                      "; check the database number in KILN_REDIS_ENDPOINT)");
  }
  return failed(Failure::error,
                server + " answered " + std::string(command) + " with an error: " + said);
}

Failure RedisStorage::connection_failure(std::string_view doing, int saved_errno) {
  const int err = m_context->err;
  const std::string reason = m_context->errstr;
  disconnect();
  if (is_timeout(err, reason, saved_errno)) {
    return fail(Failure::timeout,
                "Redis at " + m_where + " did not answer " + std::string(doing) + " within " +
                    std::to_string(m_settings.common.request_timeout_ms) +
                    " ms (timed out; check that the server is up and not overloaded)");
  }
  if (err == REDIS_ERR_PROTOCOL) {
    return fail(Failure::error, "Redis at " + m_where + " sent a malformed reply to " +
                                    std::string(doing) + " (" + reason +
                                    "; is KILN_REDIS_ENDPOINT a Redis server?)");
  }
  return fail(Failure::error, "lost the connection to Redis at " + m_where + " during " +
                                  std::string(doing) + " (" + reason + ")");
}

Failure RedisStorage::unexpected_reply(std::string_view command, const redisReply& reply) {
  // The two ends may no longer agree on where a reply starts.
  disconnect();
  return fail(Failure::error, "Redis at " + m_where + " answered " + std::string(command) +
                                  " with an unexpected " + std::string(type_name(reply.type)) +
                                  " reply (is KILN_REDIS_ENDPOINT a Redis server?)");
}

Failure RedisStorage::refuse_write(std::string_view command) {
  return fail(Failure::error, "the Redis storage at " + m_where +
                                  " is read-only (read_only = true): no " + std::string(command) +
                                  " sent");
}

expected<std::string, Failure> RedisStorage::get(const Key& key) {
  std::string value;
  auto r = get_to(key, [&](std::string_view piece) { value.append(piece); });
  if (!r) {
    return unexpected(r.error());
  }
  return value;
}

expected<void, Failure> RedisStorage::get_to(const Key& key, const Sink& sink) {
  const std::string redis_key = this->redis_key(key);
  const bool refresh = m_settings.expiration_s > 0 && !m_settings.common.read_only;
  const std::string ttl = std::to_string(m_settings.expiration_s);
  const char* name = "GET";
  expected<Reply, CommandError> reply = unexpected(CommandError{});
  if (refresh && m_have_getex) {
    name = "GETEX";
    Error previous_error = m_error;
    reply = command({"GETEX", redis_key, "EX", ttl});
    if (!reply && reply.error().reply == RedisErrorReply::unknown_command) {
      m_have_getex = false;  // Redis < 6.2 (or GETEX renamed away): GET + EXPIRE
      m_error = std::move(previous_error);
    }
  }
  if (!refresh || !m_have_getex) {
    name = "GET";
    reply = command({"GET", redis_key});
  }
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type == REDIS_REPLY_NIL) {
    return unexpected(Failure::not_found);
  }
  if ((*reply)->type != REDIS_REPLY_STRING) {
    return unexpected(unexpected_reply(name, **reply));
  }
  sink(reply_text(**reply));
  if (refresh && !m_have_getex) {
    // Best effort: the value is good whether or not its TTL was refreshed.
    (void)command({"EXPIRE", redis_key, ttl});
  }
  return {};
}

expected<void, Failure> RedisStorage::put(const Key& key, std::string_view value) {
  if (m_settings.common.read_only) {
    return unexpected(refuse_write("SET"));
  }
  const std::string redis_key = this->redis_key(key);
  auto reply =
      m_settings.expiration_s > 0
          ? command({"SET", redis_key, value, "EX", std::to_string(m_settings.expiration_s)})
          : command({"SET", redis_key, value});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type != REDIS_REPLY_STATUS) {
    return unexpected(unexpected_reply("SET", **reply));
  }
  return {};
}

expected<void, Failure> RedisStorage::remove(const Key& key) {
  if (m_settings.common.read_only) {
    return unexpected(refuse_write("DEL"));
  }
  auto reply = command({"DEL", redis_key(key)});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return unexpected(unexpected_reply("DEL", **reply));
  }
  if ((*reply)->integer == 0) {
    return unexpected(Failure::not_found);
  }
  return {};
}

expected<bool, Failure> RedisStorage::exists(const Key& key) {
  auto reply = command({"EXISTS", redis_key(key)});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return unexpected(unexpected_reply("EXISTS", **reply));
  }
  return (*reply)->integer > 0;
}

expected<bool, Failure> RedisStorage::acquire_lease(const Key& key, std::string_view holder,
                                                    std::chrono::milliseconds ttl) {
  if (m_settings.common.read_only) {
    return unexpected(refuse_write("SET"));
  }
  const std::string lease_key = this->lease_key(key);
  // PX 0 is an error reply; a lease lives at least a millisecond.
  const std::string ttl_ms = std::to_string(std::max<int64_t>(ttl.count(), 1));
  auto reply = command({"SET", lease_key, holder, "NX", "PX", ttl_ms});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type == REDIS_REPLY_STATUS) {
    return true;
  }
  if ((*reply)->type != REDIS_REPLY_NIL) {
    return unexpected(unexpected_reply("SET", **reply));
  }
  // Someone holds it; this holder, if it took it before.
  auto current = command({"GET", lease_key});
  if (!current) {
    return unexpected(current.error().failure);
  }
  if ((*current)->type == REDIS_REPLY_STRING) {
    return reply_text(**current) == holder;
  }
  if ((*current)->type != REDIS_REPLY_NIL) {
    return unexpected(unexpected_reply("GET", **current));
  }
  return false;  // it ended between the two commands: held a moment ago
}

expected<void, Failure> RedisStorage::release_lease(const Key& key, std::string_view holder) {
  if (m_settings.common.read_only) {
    return unexpected(refuse_write("EVAL"));
  }
  // Compare and delete in one step: a lease that expired and was taken by
  // another holder meanwhile stays theirs.
  static constexpr std::string_view k_release =
      "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) "
      "else return 0 end";
  auto reply = command({"EVAL", k_release, "1", lease_key(key), holder});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return unexpected(unexpected_reply("EVAL", **reply));
  }
  return {};
}

expected<bool, Failure> RedisStorage::lease_held(const Key& key) {
  auto reply = command({"EXISTS", lease_key(key)});
  if (!reply) {
    return unexpected(reply.error().failure);
  }
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return unexpected(unexpected_reply("EXISTS", **reply));
  }
  return (*reply)->integer > 0;
}

}  // namespace kiln::storage
