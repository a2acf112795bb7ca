#pragma once
// A tiny HTTP server for client tests: listens on 127.0.0.1, port 0, and
// answers each connection it accepts by running `respond` on the socket after
// reading the request head, then closes it. Not a real server.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

namespace kiln::test {

class LoopbackServer {
 public:
  using Respond = std::function<void(int fd)>;

  explicit LoopbackServer(Respond respond) : m_respond(std::move(respond)) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(addr);
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(m_fd, 8) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
      return;
    }
    m_port = ntohs(addr.sin_port);
    m_thread = std::thread([this] { serve(); });
  }

  // Answers every request with `response`, then closes the connection.
  static LoopbackServer answering(std::string response) {
    return LoopbackServer([response](int fd) { write_all(fd, response); });
  }

  ~LoopbackServer() {
    m_stop = true;
    if (m_thread.joinable()) {
      m_thread.join();
    }
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  LoopbackServer(LoopbackServer&& other) = delete;

  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(m_port) + std::string(path);
  }

  // Writes all of `data`; false once the peer has gone.
  static bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

 private:
  static bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }

  void serve() {
    while (!m_stop) {
      if (!readable(m_fd, 50)) {
        continue;
      }
      int client = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) {
        continue;
      }
      std::string head;
      char buffer[4096];
      while (head.find("\r\n\r\n") == std::string::npos && readable(client, 5000)) {
        ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          break;
        }
        head.append(buffer, static_cast<size_t>(n));
      }
      m_respond(client);
      ::close(client);
    }
  }

  Respond m_respond;
  int m_fd = -1;
  int m_port = 0;
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

}  // namespace kiln::test
