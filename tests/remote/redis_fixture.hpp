#pragma once

// Test helpers for the Redis storage: a real redis-server on a free port of
// 127.0.0.1 in its own temporary directory, and fake servers that misbehave.
// Header-only; needs hiredis and Threads.

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kiln::test {

// A port of 127.0.0.1 that was free a moment ago.
inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot find a free TCP port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A listening socket on 127.0.0.1:<port>, closed on destruction.
class Listener {
 public:
  explicit Listener(int backlog = 16) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(m_fd, backlog) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    m_port = ntohs(addr.sin_port);
  }
  ~Listener() {
    for (int fd : m_clients) {
      ::close(fd);
    }
    ::close(m_fd);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int fd() const { return m_fd; }
  int port() const { return m_port; }

  // Connects a client of our own to fill the accept queue (kept open until
  // destruction): with backlog 0 one such client makes further connects hang.
  void fill_backlog() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(m_port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("cannot connect to our own listener");
    }
    m_clients.push_back(fd);
  }

 private:
  int m_fd = -1;
  int m_port = 0;
  std::vector<int> m_clients;
};

// A server that accepts connections and answers each with `junk` (say, an HTTP
// response), then closes it. Stops on destruction.
class JunkServer {
 public:
  explicit JunkServer(std::string junk) : m_junk(std::move(junk)) {
    m_thread = std::thread([this] { serve(); });
  }
  ~JunkServer() {
    m_stop = true;
    ::shutdown(m_listener.fd(), SHUT_RDWR);
    m_thread.join();
  }
  JunkServer(const JunkServer&) = delete;
  JunkServer& operator=(const JunkServer&) = delete;

  int port() const { return m_listener.port(); }

 private:
  void serve() {
    while (!m_stop) {
      int fd = ::accept4(m_listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        return;
      }
      char buffer[4096];
      (void)::recv(fd, buffer, sizeof(buffer), 0);
      (void)::send(fd, m_junk.data(), m_junk.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
  }

  Listener m_listener;
  std::string m_junk;
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

// A reply of RedisServer::command, flattened.
struct RawReply {
  int type = REDIS_REPLY_NIL;
  std::string text;  // string, status or error
  long long integer = 0;
  std::vector<std::string> elements;  // of an array of strings
};

// A redis-server child process (killed, and its directory removed, on
// destruction): 127.0.0.1 on a free port, plus a Unix socket in its
// directory, no persistence, optionally with a password for the default user.
class RedisServer {
 public:
  explicit RedisServer(std::string password = {}, std::vector<std::string> extra_args = {})
      : m_password(std::move(password)), m_extra_args(std::move(extra_args)) {
    char tmpl[] = "/tmp/kiln-redis-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      throw std::runtime_error("mkdtemp failed");
    }
    m_dir = tmpl;
    m_port = free_tcp_port();
    start();
  }
  ~RedisServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return m_port; }
  const std::string& dir() const { return m_dir; }
  std::string socket_path() const { return m_dir + "/redis.sock"; }
  std::string log() const {
    std::ifstream in(m_dir + "/redis.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Starts the server (again, on the same port, empty) and waits until it
  // answers. Throws with the server's log if it does not within 10 s.
  void start() {
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(m_port),
                                     "--bind",
                                     "127.0.0.1",
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--dir",
                                     m_dir,
                                     "--logfile",
                                     m_dir + "/redis.log",
                                     "--unixsocket",
                                     socket_path(),
                                     "--unixsocketperm",
                                     "700",
                                     "--daemonize",
                                     "no"};
    if (!m_password.empty()) {
      args.insert(args.end(), {"--requirepass", m_password});
    }
    args.insert(args.end(), m_extra_args.begin(), m_extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    m_pid = ::fork();
    if (m_pid < 0) {
      throw std::runtime_error("fork failed");
    }
    if (m_pid == 0) {
      // Only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) {
        ::_exit(127);
      }
      int null_fd = ::open("/dev/null", O_RDWR);
      ::dup2(null_fd, 0);
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    wait_ready();
  }

  // Kills the server (SIGKILL: no goodbye to its clients) and reaps it.
  void stop() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      int status = 0;
      ::waitpid(m_pid, &status, 0);
      m_pid = -1;
    }
  }

  // Runs one command on a new connection, logged in with the password and
  // with database `db` selected.
  RawReply command(const std::vector<std::string>& args, int db = 0) const {
    timeval tv{5, 0};
    redisContext* context = redisConnectWithTimeout("127.0.0.1", m_port, tv);
    if (context == nullptr || context->err != 0) {
      if (context != nullptr) {
        redisFree(context);
      }
      throw std::runtime_error("cannot connect to the test Redis server");
    }
    redisSetTimeout(context, tv);
    if (!m_password.empty()) {
      run(context, {"AUTH", m_password});
    }
    if (db != 0) {
      run(context, {"SELECT", std::to_string(db)});
    }
    RawReply reply = run(context, args);
    redisFree(context);
    return reply;
  }

 private:
  static RawReply run(redisContext* context, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto* raw = static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (raw == nullptr) {
      throw std::runtime_error(std::string("test Redis command failed: ") + context->errstr);
    }
    RawReply out;
    out.type = raw->type;
    out.integer = raw->integer;
    if (raw->str != nullptr) {
      out.text.assign(raw->str, raw->len);
    }
    for (size_t i = 0; i < raw->elements; ++i) {
      const redisReply* element = raw->element[i];
      out.elements.emplace_back(element->str != nullptr ? element->str : "", element->len);
    }
    freeReplyObject(raw);
    return out;
  }

  void wait_ready() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        throw std::runtime_error("redis-server exited at start-up:\n" + log());
      }
      timeval tv{0, 200 * 1000};
      redisContext* context = redisConnectWithTimeout("127.0.0.1", m_port, tv);
      bool ready = false;
      if (context != nullptr && context->err == 0) {
        redisSetTimeout(context, tv);
        void* reply = redisCommand(context, "PING");  // PONG, or NOAUTH: either way up
        ready = reply != nullptr;
        if (reply != nullptr) {
          freeReplyObject(reply);
        }
      }
      if (context != nullptr) {
        redisFree(context);
      }
      if (ready) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    throw std::runtime_error("redis-server did not answer within 10 s:\n" + log());
  }

  std::string m_password;
  std::vector<std::string> m_extra_args;
  std::string m_dir;
  int m_port = 0;
  pid_t m_pid = -1;
};

}  // namespace kiln::test
