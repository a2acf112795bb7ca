#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/util/expected.hpp"

namespace kiln::net {

// One request as the server read it: complete, within the server's limits.
struct ServerRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as sent: path and query
  std::string path;    // target up to '?'
  std::string query;   // after '?', may be empty
  // Names in lowercase, in the order received.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // "address:port" of the client
  // Set (from an I/O thread) when the client closes its connection while the
  // request is being handled: a handler running a long job checks it to
  // cancel. Never reset.
  std::shared_ptr<const std::atomic<bool>> client_gone;

  std::optional<std::string> header(std::string_view lowercase_name) const;
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/-Length
  std::string body;
  bool close = false;  // close the connection after this response
};

// Completes a request. Call it exactly once, from any thread, at any time
// (also after the server stopped: the response is then dropped).
using Reply = std::function<void(ServerResponse)>;

// Called on an I/O thread for each request. It must not block: work that
// takes time (a compile, a wait for capacity) goes elsewhere and calls
// `reply` when done.
using Handler = std::function<void(ServerRequest&&, Reply)>;

struct TlsIdentity {
  std::string cert_pem;  // the server's certificate (chain), PEM
  std::string key_pem;   // its private key, PEM
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // an address to bind, or a name resolving to one
  uint16_t port = 0;               // 0: any free port (see HttpServer::port)
  int threads = 2;                 // I/O threads
  std::optional<TlsIdentity> tls;  // HTTPS when set
  // A request whose body would pass this is answered 413 before the body is
  // read (from Content-Length) or as soon as it passes (chunked).
  uint64_t max_body_bytes = uint64_t{64} << 20;
  // When set, the body limit of one request, decided from its method and
  // target once the headers are read (at most max_body_bytes): a server with
  // small and large uploads on different paths refuses a large body to a
  // small path with a 413 before reading it.
  std::function<uint64_t(std::string_view method, std::string_view target)> body_limit_for;
  uint32_t max_header_bytes = 64 * 1024;  // request line and headers: 431 beyond
  // Time to read one whole request once its first byte arrived, and to write
  // a response; a client that sends half a body and stops is cut off then.
  std::chrono::milliseconds io_timeout{30000};
  // How long a kept-alive connection may sit idle between requests.
  std::chrono::milliseconds idle_timeout{60000};
};

// Counters since start, for /metrics.
struct ServerStats {
  uint64_t connections = 0;
  uint64_t requests = 0;
  uint64_t rejected = 0;  // answered 4xx by the server itself (bad framing, limits)
};

// An HTTP/1.1 server (Boost.Beast on Asio): keep-alive, optional TLS, limits
// on what a client may send, and a handler that answers asynchronously.
// Thread model: `threads` threads run one io_context; each connection is
// served on its own strand. Thread-safe.
class HttpServer {
 public:
  // Binds, listens and starts the I/O threads. The error says why not (the
  // address in use, a bad certificate).
  static expected<std::unique_ptr<HttpServer>, std::string> start(ServerOptions options,
                                                                  Handler handler);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  // Stops accepting, closes every connection, joins the I/O threads.
  // Responses not yet written are dropped. Idempotent.
  void stop();
  ServerStats stats() const;

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> m_impl;
};

}  // namespace kiln::net
