// Timed connects and name lookups of the socket transport (plain_socket.hpp).
#include "kiln/net/plain_socket.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace kiln::net::plain {

namespace {

using AddressList = std::unique_ptr<addrinfo, void (*)(addrinfo*)>;

// A name lookup that may outlive the wait for it: the thread that runs
// getaddrinfo frees the result itself if nobody waits any more.
struct PendingLookup {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  bool abandoned = false;
  int rc = 0;
  int error = 0;  // errno, for EAI_SYSTEM
  addrinfo* result = nullptr;
};

// getaddrinfo bounded by `deadline`, as libcurl's threaded resolver is: a
// resolver that does not answer (a dead DNS server) costs the connect timeout,
// not the resolver's own timeouts (5 s and more per attempt). IP literals
// resolve at once, without a thread.
expected<AddressList, HttpError> resolve(const util::Clock& clock, const Endpoint& target,
                                         SteadyPoint deadline, int connect_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
  addrinfo* found = nullptr;
  if (::getaddrinfo(target.host.c_str(), target.port.c_str(), &hints, &found) == 0) {
    return AddressList(found, ::freeaddrinfo);
  }
  auto lookup = std::make_shared<PendingLookup>();
  try {
    std::thread([lookup, host = target.host, port = target.port] {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      hints.ai_flags = AI_NUMERICSERV;
      addrinfo* result = nullptr;
      int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &result);
      int error = errno;
      std::lock_guard<std::mutex> lock(lookup->mutex);
      if (lookup->abandoned) {
        if (rc == 0) {
          ::freeaddrinfo(result);
        }
        return;
      }
      lookup->rc = rc;
      lookup->error = error;
      lookup->result = rc == 0 ? result : nullptr;
      lookup->done = true;
      lookup->done_cv.notify_one();
    }).detach();
  } catch (const std::system_error& e) {
    return unexpected(HttpError{
        TransportError::other, "cannot start the name lookup of " + target.host + ": " + e.what()});
  }
  std::unique_lock<std::mutex> lock(lookup->mutex);
  // The deadline is on the injected clock: wait for what is left of it.
  const auto left = std::chrono::milliseconds(std::max(0, ms_until(clock, deadline)));
  if (!lookup->done_cv.wait_for(lock, left, [&] { return lookup->done; })) {
    lookup->abandoned = true;
    return unexpected(HttpError{
        TransportError::timeout,
        "resolving " + target.host + " timed out after " + std::to_string(connect_ms) + " ms"});
  }
  if (lookup->rc != 0) {
    std::string why =
        lookup->rc == EAI_SYSTEM ? errno_text(lookup->error) : ::gai_strerror(lookup->rc);
    return unexpected(
        HttpError{TransportError::cannot_connect, "cannot resolve " + target.host + ": " + why});
  }
  return AddressList(lookup->result, ::freeaddrinfo);
}

}  // namespace

std::string errno_text(int error) {
  return std::strerror(error);
}

int ms_until(const util::Clock& clock, SteadyPoint deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock.steady()).count();
  return left > 0 ? static_cast<int>(std::min<int64_t>(left, 1 << 30)) : 0;
}

bool wait_for(const util::Clock& clock, int fd, short events, SteadyPoint deadline) {
  for (;;) {
    int left = ms_until(clock, deadline);
    if (left == 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, left);
    if (n > 0) {
      return true;
    }
    if (n == 0) {
      return false;
    }
    if (errno != EINTR) {
      return true;
    }
  }
}

expected<int, HttpError> connect_to(const util::Clock& clock, const Endpoint& target,
                                    SteadyPoint connect_deadline, int connect_ms) {
  auto resolved = resolve(clock, target, connect_deadline, connect_ms);
  if (!resolved) {
    return unexpected(resolved.error());
  }
  addrinfo* found = resolved->get();
  int last_error = ECONNREFUSED;
  for (addrinfo* a = found; a; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    int error = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        if (!wait_for(clock, fd, POLLOUT, connect_deadline)) {
          ::close(fd);
          return unexpected(HttpError{TransportError::timeout,
                                      "connecting to " + target.host_port + " timed out after " +
                                          std::to_string(connect_ms) + " ms"});
        }
        socklen_t length = sizeof(error);
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
          error = errno;
        }
      }
    }
    if (error == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return fd;
    }
    ::close(fd);
    last_error = error;
  }
  return unexpected(
      HttpError{TransportError::cannot_connect,
                "cannot connect to " + target.host_port + ": " + errno_text(last_error)});
}

}  // namespace kiln::net::plain
