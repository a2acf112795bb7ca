// The socket transport of HttpClient (plain_client.hpp).
#include "kiln/net/plain_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>

#include "kiln/net/percent.hpp"
#include "kiln/net/plain_socket.hpp"
#include "kiln/net/response_parser.hpp"
#include "kiln/net/url.hpp"
#include "kiln/util/string.hpp"

namespace kiln::net {

namespace {

using plain::Endpoint;
using plain::errno_text;
using plain::SteadyPoint;

// Large reads keep the recv calls few for values of megabytes.
constexpr size_t k_read_buffer_size = 256 * 1024;

std::string base64(std::string_view s) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(s[i])) << 16;
    if (i + 1 < s.size()) {
      n |= static_cast<uint32_t>(static_cast<unsigned char>(s[i + 1])) << 8;
    }
    if (i + 2 < s.size()) {
      n |= static_cast<unsigned char>(s[i + 2]);
    }
    out += k_alphabet[(n >> 18) & 63];
    out += k_alphabet[(n >> 12) & 63];
    out += i + 1 < s.size() ? k_alphabet[(n >> 6) & 63] : '=';
    out += i + 2 < s.size() ? k_alphabet[n & 63] : '=';
  }
  return out;
}

HttpError url_error(std::string message) {
  return HttpError{TransportError::other, std::move(message)};
}

// A parsed http:// URL: where to connect and what to send.
struct Target {
  Endpoint endpoint;
  std::string host_header;  // the host as written, ":port" unless 80
  std::string path;         // "/path?query", what the request line asks for
  std::string credentials;  // "user:password" decoded, "" without user info
};

expected<Target, HttpError> parse_target(std::string_view text) {
  auto url = Url::parse(text);
  if (!url) {
    // Not the URL itself: it may hold a password.
    return unexpected(url_error(std::string(describe(url.error()))));
  }
  if (url->scheme == "https") {
    return unexpected(HttpError{TransportError::cannot_connect,
                                "https:// needs libkiln-remote.so (libcurl); this client "
                                "(libkiln-http.so) speaks plain http:// only"});
  }
  if (url->scheme != "http") {
    return unexpected(
        url_error("unsupported URL scheme '" + url->scheme.substr(0, 20) + "://' (only http://)"));
  }
  if (url->host.empty()) {
    return unexpected(url_error("no host in URL"));
  }
  Target t;
  t.endpoint.host = url->host;
  t.endpoint.port = std::to_string(url->port_or(80));
  t.endpoint.host_port = url->host_port(80);
  t.host_header = url->port_or(80) == 80 ? url->host_for_uri() : t.endpoint.host_port;
  t.path = url->target();
  if (url->has_userinfo) {
    std::string_view info = url->userinfo;
    auto colon = info.find(':');
    auto user = percent_decode(info.substr(0, colon));
    auto password = percent_decode(colon == std::string_view::npos ? "" : info.substr(colon + 1));
    if (!user || !password) {
      return unexpected(url_error("bad %-escape in the user info of the URL"));
    }
    t.credentials = *user + ":" + *password;
  }
  return t;
}

// The request line and headers, up to the empty line.
expected<std::string, HttpError> request_head(const HttpRequest& request, const Target& target) {
  std::vector<std::string> lines = header_lines_to_send(request);
  std::string head = request.method + " " + target.path + " HTTP/1.1\r\n";
  if (!has_header(lines, "host")) {
    head += "Host: " + target.host_header + "\r\n";
  }
  if (!has_header(lines, "user-agent")) {
    head += "User-Agent: kiln\r\n";
  }
  if (!target.credentials.empty() && !has_header(lines, "authorization")) {
    head += "Authorization: Basic " + base64(target.credentials) + "\r\n";
  }
  for (const auto& line : lines) {
    if (line.find_first_of("\r\n") != std::string::npos) {
      return unexpected(url_error("a request header has a line break"));
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    // As with curl, "Name:" sends nothing; Content-Length is ours to set.
    std::string_view value = util::trim(std::string_view(line).substr(colon + 1));
    std::string name = util::lowercase(util::trim(std::string_view(line).substr(0, colon)));
    if (value.empty() || name == "content-length" || name == "transfer-encoding") {
      continue;
    }
    head += line + "\r\n";
  }
  if (sends_body(request)) {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "\r\n";
  return head;
}

// The kept-alive connection and its read buffer, kept between requests.
struct Connection {
  int fd = -1;
  std::string host_port;  // of the server it is connected to
  std::unique_ptr<char[]> buffer = std::make_unique<char[]>(k_read_buffer_size);

  ~Connection() { close(); }

  void close() {
    if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
    host_port.clear();
  }
};

// One request and its response on one connection, all under one deadline.
class Exchange {
 public:
  Exchange(const util::Clock& clock, Connection* connection, SteadyPoint deadline, int total_ms)
      : m_clock(clock), m_conn(*connection), m_deadline(deadline), m_total_ms(total_ms) {}

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
          if (!plain::wait_for(m_clock, m_conn.fd, POLLOUT, m_deadline)) {
            return unexpected(timed_out());
          }
          continue;
        }
        return unexpected(failed(TransportError::other, "sending the request", errno_text(errno)));
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

  // Reads the response into *parser until it is complete.
  expected<void, HttpError> receive(ResponseParser* parser, bool* keep_alive) {
    while (!parser->complete()) {
      auto n = fill();
      if (!n) {
        return unexpected(n.error());
      }
      if (*n == 0) {
        auto end = parser->finish();
        if (!end) {
          return unexpected(closed_early(*parser));
        }
        break;
      }
      auto used = parser->feed(std::string_view(m_conn.buffer.get(), *n));
      if (!used) {
        ResponseError e = used.error();
        TransportError kind = e == ResponseError::body_too_large ||
                                      e == ResponseError::header_line_too_long ||
                                      e == ResponseError::too_many_headers
                                  ? TransportError::response_too_large
                                  : TransportError::malformed_response;
        return unexpected(failed(kind, "reading the response", std::string(describe(e))));
      }
      if (*used < *n) {
        m_trailing_bytes = true;
      }
    }
    // Bytes after the response: do not trust the connection.
    *keep_alive = parser->keep_alive() && !m_trailing_bytes;
    return {};
  }

 private:
  HttpError timed_out() const {
    return HttpError{TransportError::timeout, "no complete response from " + m_conn.host_port +
                                                  " within " + std::to_string(m_total_ms) + " ms"};
  }

  HttpError failed(TransportError kind, const std::string& doing, const std::string& why) const {
    return HttpError{kind, m_conn.host_port + ": " + doing + ": " + why};
  }

  HttpError closed_early(ResponseParser& parser) const {
    std::string where = "before responding";
    if (m_received_any) {
      where = "in the response headers";
      if (parser.headers_complete()) {
        where = "in the body (" + std::to_string(parser.response().body.size()) +
                (parser.body_expected() > 0
                     ? " of " + std::to_string(parser.body_expected()) + " bytes received)"
                     : " bytes received)");
      }
    }
    return HttpError{TransportError::other, m_conn.host_port + " closed the connection " + where};
  }

  // Receives the next bytes into the buffer; 0 at the end of the stream.
  expected<size_t, HttpError> fill() {
    for (;;) {
      ssize_t n = ::recv(m_conn.fd, m_conn.buffer.get(), k_read_buffer_size, 0);
      if (n > 0) {
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
        return unexpected(failed(TransportError::other, "reading the response", errno_text(errno)));
      }
      if (!plain::wait_for(m_clock, m_conn.fd, POLLIN, m_deadline)) {
        return unexpected(timed_out());
      }
    }
  }

  const util::Clock& m_clock;
  Connection& m_conn;
  SteadyPoint m_deadline;
  int m_total_ms;
  bool m_received_any = false;
  bool m_trailing_bytes = false;
};

class PlainClient final : public HttpClient {
 public:
  PlainClient(HttpTimeouts timeouts, HttpLimits limits, const util::Clock& clock)
      : m_timeouts(timeouts), m_limits(limits), m_clock(clock) {}

  int64_t connections_opened() const override { return m_connections_opened; }

  expected<HttpResponse, HttpError> perform(const HttpRequest& request) override {
    const int total_ms = request.total_ms > 0 ? request.total_ms : m_timeouts.total_ms;
    auto deadline = m_clock.steady() + std::chrono::milliseconds(total_ms);
    auto target = parse_target(request.url);
    if (!target) {
      return unexpected(target.error());
    }
    auto head = request_head(request, *target);
    if (!head) {
      return unexpected(head.error());
    }
    std::string_view body = sends_body(request) ? request.body : std::string_view();
    const Endpoint& endpoint = target->endpoint;

    for (int attempt = 0;; ++attempt) {
      bool reused = m_connection.fd >= 0 && m_connection.host_port == endpoint.host_port;
      if (!reused) {
        m_connection.close();
        auto connect_deadline =
            std::min(deadline, m_clock.steady() + std::chrono::milliseconds(m_timeouts.connect_ms));
        auto fd = plain::connect_to(m_clock, endpoint, connect_deadline,
                                    std::min(m_timeouts.connect_ms, total_ms));
        if (!fd) {
          return unexpected(fd.error());
        }
        m_connection.fd = *fd;
        m_connection.host_port = endpoint.host_port;
        ++m_connections_opened;
      }
      Exchange exchange(m_clock, &m_connection, deadline, total_ms);
      ResponseParser parser(request.method == "HEAD", m_limits);
      bool keep_alive = false;
      auto done = exchange.send(*head, body);
      if (done) {
        done = exchange.receive(&parser, &keep_alive);
      }
      if (done) {
        if (!keep_alive) {
          m_connection.close();
        }
        return std::move(parser.response());
      }
      m_connection.close();
      // The server may have closed the idle connection just as it was reused:
      // one more try on a fresh one, within the same deadline.
      if (reused && attempt == 0 && !exchange.received_any() &&
          done.error().kind != TransportError::timeout) {
        continue;
      }
      return unexpected(done.error());
    }
  }

 private:
  HttpTimeouts m_timeouts;
  HttpLimits m_limits;
  const util::Clock& m_clock;
  Connection m_connection;
  int64_t m_connections_opened = 0;
};

}  // namespace

std::unique_ptr<HttpClient> make_plain_client(HttpTimeouts timeouts, HttpLimits limits,
                                              const util::Clock& clock) {
  return std::make_unique<PlainClient>(timeouts, limits, clock);
}

}  // namespace kiln::net
