// The socket transport of HttpClient (libkiln-http.so): HTTP/1.1 over POSIX
// sockets for http:// URLs, so that a plain-HTTP level does not load libcurl
// and its ~36 shared libraries. https:// needs http_client.cpp (libcurl).
// http_common.cpp has the parts shared with the libcurl transport.
#include "kiln/storage/remote/http_client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include "kiln/storage/remote/http_plain.hpp"
#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

using plain::Clock;
using plain::errno_text;
using plain::hex_value;
using plain::wait_for;

// Large reads keep the recv calls few for values of megabytes.
constexpr size_t k_read_buffer_size = 256 * 1024;
// Status, header, chunk-size and trailer lines of one response, at most.
constexpr int k_max_header_lines = 1000;

// Whether the comma-separated header value has `token` (lowercase).
bool has_token(std::string_view value, std::string_view token) {
  for (const auto& part : util::split(value, ',')) {
    if (util::lowercase(util::trim(part)) == token) {
      return true;
    }
  }
  return false;
}

// The kept-alive connection and its read buffer, kept between requests.
struct Connection {
  int fd = -1;
  std::string host_port;  // of the server it is connected to
  std::unique_ptr<char[]> buffer = std::make_unique<char[]>(k_read_buffer_size);
  size_t begin = 0;  // unread bytes are buffer[begin, end)
  size_t end = 0;

  ~Connection() { close(); }

  void close() {
    if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
    host_port.clear();
    begin = 0;
    end = 0;
  }
};

// One request and its response on one connection, all under one deadline.
class Exchange {
 public:
  Exchange(Connection* connection, Clock::time_point deadline, int total_ms)
      : m_conn(*connection), m_deadline(deadline), m_total_ms(total_ms) {}

  // Whether any byte of the response has arrived.
  bool received_any() const { return m_received_any; }

  expected<void, HttpError> send(std::string_view head, std::string_view body) {
    iovec parts[2] = {{const_cast<char*>(head.data()), head.size()},
                      {const_cast<char*>(body.data()), body.size()}};
    iovec* next = parts;
    int count = body.empty() ? 1 : 2;
    while (count > 0) {
      msghdr message{};
      message.msg_iov = next;
      message.msg_iovlen = static_cast<size_t>(count);
      ssize_t n = ::sendmsg(m_conn.fd, &message, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (!wait_for(m_conn.fd, POLLOUT, m_deadline)) {
            return unexpected(timed_out());
          }
          continue;
        }
        return unexpected(failed("sending the request", errno_text(errno)));
      }
      auto sent = static_cast<size_t>(n);
      while (count > 0 && sent >= next->iov_len) {
        sent -= next->iov_len;
        ++next;
        --count;
      }
      if (count > 0) {
        next->iov_base = static_cast<char*>(next->iov_base) + sent;
        next->iov_len -= sent;
      }
    }
    return {};
  }

  // Reads the final response (1xx interim responses skipped). *keep_alive is
  // set when the connection may carry another request.
  expected<void, HttpError> receive(bool head_request, HttpResponse* response, bool* keep_alive) {
    int lines = 0;
    bool http10 = false;
    for (;;) {
      auto status_line = read_line();
      if (!status_line) {
        return unexpected(status_line.error());
      }
      std::string_view s = *status_line;
      if (s.size() < 12 || !s.starts_with("HTTP/1.") || (s[7] != '0' && s[7] != '1') ||
          s[8] != ' ' || !std::isdigit(static_cast<unsigned char>(s[9])) ||
          !std::isdigit(static_cast<unsigned char>(s[10])) ||
          !std::isdigit(static_cast<unsigned char>(s[11])) || (s.size() > 12 && s[12] != ' ')) {
        return unexpected(failed("reading the response",
                                 "malformed status line \"" + std::string(s.substr(0, 80)) + "\""));
      }
      http10 = s[7] == '0';
      response->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
      response->headers.clear();
      response->body.clear();
      for (;;) {
        auto line = read_line();
        if (!line) {
          return unexpected(line.error());
        }
        if (line->empty()) {
          break;
        }
        if (++lines > k_max_header_lines) {
          return unexpected(failed("reading the response", "too many header lines"));
        }
        if (!http_detail::add_response_header(response, *line)) {
          return unexpected(failed("reading the response",
                                   "malformed header line \"" + line->substr(0, 80) + "\""));
        }
      }
      if (response->status >= 100 && response->status < 200 && response->status != 101) {
        continue;  // 100 Continue, 103 Early Hints: the final response follows
      }
      break;
    }

    auto connection = response->header("connection");
    *keep_alive = connection ? !has_token(*connection, "close") &&
                                   (!http10 || has_token(*connection, "keep-alive"))
                             : !http10;
    long status = response->status;
    if (head_request || status < 200 || status == 204 || status == 304) {
      // No body; a 101 leaves the connection to another protocol.
      *keep_alive = *keep_alive && status != 101;
    } else if (auto te = response->header("transfer-encoding")) {
      if (has_token(*te, "chunked")) {
        auto r = read_chunked(&response->body);
        if (!r) {
          return r;
        }
      } else {
        *keep_alive = false;
        auto r = read_until_close(&response->body);
        if (!r) {
          return r;
        }
      }
    } else if (auto length_text = response->header("content-length")) {
      auto length = util::parse_int(*length_text);
      if (!length || *length < 0) {
        return unexpected(failed("reading the response",
                                 "invalid Content-Length \"" + length_text->substr(0, 40) + "\""));
      }
      auto r = read_exactly(static_cast<uint64_t>(*length), &response->body);
      if (!r) {
        return r;
      }
    } else {
      *keep_alive = false;
      auto r = read_until_close(&response->body);
      if (!r) {
        return r;
      }
    }
    if (m_conn.begin != m_conn.end) {
      *keep_alive = false;  // bytes after the response: do not trust the connection
    }
    return {};
  }

 private:
  HttpError timed_out() const {
    return HttpError{TransportError::timeout, "no complete response from " + m_conn.host_port +
                                                  " within " + std::to_string(m_total_ms) + " ms"};
  }

  HttpError failed(const std::string& doing, const std::string& why) const {
    return HttpError{TransportError::other, m_conn.host_port + ": " + doing + ": " + why};
  }

  // Receives more bytes into the buffer; 0 at the end of the stream.
  expected<size_t, HttpError> fill() {
    if (m_conn.begin == m_conn.end) {
      m_conn.begin = 0;
      m_conn.end = 0;
    } else if (m_conn.end == k_read_buffer_size) {
      std::memmove(m_conn.buffer.get(), m_conn.buffer.get() + m_conn.begin,
                   m_conn.end - m_conn.begin);
      m_conn.end -= m_conn.begin;
      m_conn.begin = 0;
    }
    if (m_conn.end == k_read_buffer_size) {
      return unexpected(failed("reading the response", "header line too long"));
    }
    for (;;) {
      ssize_t n =
          ::recv(m_conn.fd, m_conn.buffer.get() + m_conn.end, k_read_buffer_size - m_conn.end, 0);
      if (n > 0) {
        m_conn.end += static_cast<size_t>(n);
        m_received_any = true;
        return static_cast<size_t>(n);
      }
      if (n == 0) {
        return 0;
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return unexpected(failed("reading the response", errno_text(errno)));
      }
      if (!wait_for(m_conn.fd, POLLIN, m_deadline)) {
        return unexpected(timed_out());
      }
    }
  }

  HttpError closed_early(const std::string& where) const {
    return HttpError{TransportError::other, m_conn.host_port + " closed the connection " +
                                                (m_received_any ? where : "before responding")};
  }

  // The next line without its CRLF (or bare LF).
  expected<std::string, HttpError> read_line() {
    for (;;) {
      const char* start = m_conn.buffer.get() + m_conn.begin;
      const char* newline =
          static_cast<const char*>(std::memchr(start, '\n', m_conn.end - m_conn.begin));
      if (newline) {
        std::string line(start, static_cast<size_t>(newline - start));
        m_conn.begin += line.size() + 1;
        if (!line.empty() && line.back() == '\r') {
          line.pop_back();
        }
        return line;
      }
      auto n = fill();
      if (!n) {
        return unexpected(n.error());
      }
      if (*n == 0) {
        return unexpected(closed_early("in the response headers"));
      }
    }
  }

  expected<void, HttpError> read_exactly(uint64_t length, std::string* body) {
    uint64_t left = length;
    for (;;) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(left, m_conn.end - m_conn.begin));
      body->append(m_conn.buffer.get() + m_conn.begin, take);
      m_conn.begin += take;
      left -= take;
      if (left == 0) {
        return {};
      }
      auto n = fill();
      if (!n) {
        return unexpected(n.error());
      }
      if (*n == 0) {
        return unexpected(closed_early("in the body (" + std::to_string(length - left) + " of " +
                                       std::to_string(length) + " bytes received)"));
      }
    }
  }

  expected<void, HttpError> read_until_close(std::string* body) {
    for (;;) {
      body->append(m_conn.buffer.get() + m_conn.begin, m_conn.end - m_conn.begin);
      m_conn.begin = m_conn.end;
      auto n = fill();
      if (!n) {
        return unexpected(n.error());
      }
      if (*n == 0) {
        return {};
      }
    }
  }

  expected<void, HttpError> read_chunked(std::string* body) {
    for (;;) {
      auto line = read_line();
      if (!line) {
        return unexpected(line.error());
      }
      std::string_view size_text = util::trim(std::string_view(*line).substr(0, line->find(';')));
      uint64_t size = 0;
      bool valid = !size_text.empty() && size_text.size() <= 15;
      for (char c : size_text) {
        int digit = hex_value(c);
        valid = valid && digit >= 0;
        size = size * 16 + static_cast<uint64_t>(std::max(digit, 0));
      }
      if (!valid) {
        return unexpected(
            failed("reading the response", "malformed chunk size \"" + line->substr(0, 40) + "\""));
      }
      if (size == 0) {
        break;
      }
      auto r = read_exactly(size, body);
      if (!r) {
        return r;
      }
      auto end_of_chunk = read_line();
      if (!end_of_chunk) {
        return unexpected(end_of_chunk.error());
      }
      if (!end_of_chunk->empty()) {
        return unexpected(failed("reading the response", "no CRLF after a chunk"));
      }
    }
    // Trailer fields, ignored, up to the empty line.
    for (int lines = 0;; ++lines) {
      auto line = read_line();
      if (!line) {
        return unexpected(line.error());
      }
      if (line->empty()) {
        return {};
      }
      if (lines > k_max_header_lines) {
        return unexpected(failed("reading the response", "too many trailer lines"));
      }
    }
  }

  Connection& m_conn;
  Clock::time_point m_deadline;
  int m_total_ms;
  bool m_received_any = false;
};

}  // namespace

HttpClient::HttpClient(HttpTimeouts timeouts) : m_timeouts(timeouts) {
  m_transport = new Connection;
}

HttpClient::~HttpClient() {
  delete static_cast<Connection*>(m_transport);
}

expected<HttpResponse, HttpError> HttpClient::perform(const HttpRequest& request) {
  auto& connection = *static_cast<Connection*>(m_transport);
  auto deadline = Clock::now() + std::chrono::milliseconds(m_timeouts.total_ms);
  auto target = plain::parse_url(request.url);
  if (!target) {
    return unexpected(target.error());
  }
  auto head = plain::request_head(request, *target);
  if (!head) {
    return unexpected(head.error());
  }
  std::string_view body = http_detail::sends_body(request) ? request.body : std::string_view();

  for (int attempt = 0;; ++attempt) {
    bool reused = connection.fd >= 0 && connection.host_port == target->host_port;
    if (!reused) {
      connection.close();
      auto connect_deadline =
          std::min(deadline, Clock::now() + std::chrono::milliseconds(m_timeouts.connect_ms));
      auto fd = plain::connect_to(*target, connect_deadline,
                                  std::min(m_timeouts.connect_ms, m_timeouts.total_ms));
      if (!fd) {
        return unexpected(fd.error());
      }
      connection.fd = *fd;
      connection.host_port = target->host_port;
      ++m_connections_opened;
    }
    Exchange exchange(&connection, deadline, m_timeouts.total_ms);
    HttpResponse response;
    bool keep_alive = false;
    auto done = exchange.send(*head, body);
    if (done) {
      done = exchange.receive(request.method == "HEAD", &response, &keep_alive);
    }
    if (done) {
      if (!keep_alive) {
        connection.close();
      }
      return response;
    }
    connection.close();
    // The server may have closed the idle connection just as it was reused:
    // one more try on a fresh one, within the same deadline.
    if (reused && attempt == 0 && !exchange.received_any() &&
        done.error().kind != TransportError::timeout) {
      continue;
    }
    return unexpected(done.error());
  }
}

}  // namespace kiln::storage
