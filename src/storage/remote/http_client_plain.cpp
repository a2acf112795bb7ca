// The socket transport of HttpClient (libkiln-http.so): HTTP/1.1 over POSIX
// sockets for http:// URLs, so that a plain-HTTP level does not load libcurl
// and its ~36 shared libraries. https:// needs http_client.cpp (libcurl).
// http_common.cpp has the parts shared with the libcurl transport.
#include "kiln/storage/remote/http_client.hpp"

#include <netdb.h>
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
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "kiln/util/string.hpp"

namespace kiln::storage {

namespace {

using Clock = std::chrono::steady_clock;

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

std::string errno_text(int error) {
  return std::strerror(error);
}

// The parts of an http:// URL the transport needs.
struct Target {
  std::string host;         // for getaddrinfo: an IPv6 literal without brackets
  std::string host_port;    // "host:port" (brackets kept), for messages and reuse
  std::string host_header;  // the Host header: the host as written, ":port" unless 80
  std::string port;
  std::string path;      // "/path?query", what the request line asks for
  std::string userinfo;  // "user:password" (still percent-encoded) or ""
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

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

// http://[user:password@]host[:port][/path][?query][#fragment]; the host is a
// name, an IPv4 literal or an IPv6 literal in brackets.
expected<Target, HttpError> parse_url(std::string_view url) {
  auto scheme_end = url.find("://");
  std::string scheme = util::lowercase(url.substr(0, scheme_end));
  if (scheme_end == std::string_view::npos || scheme != "http") {
    if (scheme == "https") {
      return unexpected(HttpError{TransportError::cannot_connect,
                                  "https:// needs libkiln-remote.so (libcurl); this client "
                                  "(libkiln-http.so) speaks plain http:// only"});
    }
    return unexpected(HttpError{TransportError::other, "unsupported URL (only http://): " +
                                                           std::string(url.substr(0, 200))});
  }
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('#'));
  size_t path_start = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, path_start);
  Target t;
  if (path_start != std::string_view::npos) {
    t.path = rest.substr(path_start);
  }
  if (t.path.empty() || t.path[0] == '?') {
    t.path.insert(0, "/");
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    t.userinfo = authority.substr(0, at);
    authority.remove_prefix(at + 1);
  }
  std::string_view host;
  std::string_view port;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return unexpected(HttpError{TransportError::other, "malformed IPv6 host in URL"});
    }
    host = authority.substr(0, close + 1);
    t.host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && !after.starts_with(':')) {
      return unexpected(HttpError{TransportError::other, "malformed host in URL"});
    }
    port = after.empty() ? "" : after.substr(1);
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    t.host = host;
    port = colon == std::string_view::npos ? "" : authority.substr(colon + 1);
  }
  if (t.host.empty()) {
    return unexpected(HttpError{TransportError::other, "no host in URL"});
  }
  int port_number = 80;
  if (!port.empty()) {
    auto n = util::parse_int(port);
    bool digits = std::all_of(port.begin(), port.end(),
                              [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!n || !digits || *n < 1 || *n > 65535) {
      return unexpected(HttpError{TransportError::other,
                                  "invalid port in URL: " + std::string(port.substr(0, 20))});
    }
    port_number = static_cast<int>(*n);
  }
  t.port = std::to_string(port_number);
  t.host_port = std::string(host) + ":" + t.port;
  t.host_header = port_number == 80 ? std::string(host) : t.host_port;
  return t;
}

// The request line and headers, up to the empty line.
expected<std::string, HttpError> request_head(const HttpRequest& request, const Target& target) {
  std::vector<std::string> lines = http_detail::request_header_lines(request);
  std::string head = request.method + " " + target.path + " HTTP/1.1\r\n";
  if (!http_detail::has_header(lines, "host")) {
    head += "Host: " + target.host_header + "\r\n";
  }
  if (!http_detail::has_header(lines, "user-agent")) {
    head += "User-Agent: kiln\r\n";
  }
  if (!target.userinfo.empty() && !http_detail::has_header(lines, "authorization")) {
    auto colon = target.userinfo.find(':');
    std::string credentials = percent_decode(target.userinfo.substr(0, colon));
    credentials += ":";
    if (colon != std::string::npos) {
      credentials += percent_decode(target.userinfo.substr(colon + 1));
    }
    head += "Authorization: Basic " + base64(credentials) + "\r\n";
  }
  for (const auto& line : lines) {
    if (line.find_first_of("\r\n") != std::string::npos) {
      return unexpected(HttpError{TransportError::other, "a request header has a line break"});
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
  if (http_detail::sends_body(request)) {
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

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(std::min<int64_t>(left, 1 << 30)) : 0;
}

// Waits until `fd` is ready for `events` or the deadline passes. Returns
// false on timeout; errors and hang-ups count as ready (the next call reports them).
bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int left = ms_until(deadline);
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
expected<AddressList, HttpError> resolve(const Target& target, Clock::time_point deadline,
                                         int connect_ms) {
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
  if (!lookup->done_cv.wait_until(lock, deadline, [&] { return lookup->done; })) {
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

// Opens a non-blocking TCP connection to the target, trying every address
// the name resolves to until `connect_deadline`.
expected<int, HttpError> connect_to(const Target& target, Clock::time_point connect_deadline,
                                    int connect_ms) {
  auto resolved = resolve(target, connect_deadline, connect_ms);
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
        if (!wait_for(fd, POLLOUT, connect_deadline)) {
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
  auto target = parse_url(request.url);
  if (!target) {
    return unexpected(target.error());
  }
  auto head = request_head(request, *target);
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
      auto fd = connect_to(*target, connect_deadline,
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
