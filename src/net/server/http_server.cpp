#include "kiln/net/server/http_server.hpp"

#include <sys/socket.h>
#include <algorithm>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <thread>

#include "kiln/util/string.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::optional<std::string> ServerRequest::header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) {
      return value;
    }
  }
  return std::nullopt;
}

namespace {

// The parts of a session the server and a Reply need, whatever the stream.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void send(ServerResponse response) = 0;
  // Closes the socket at once; only while no I/O thread runs.
  virtual void close_now() = 0;
};

}  // namespace

// Sessions refer to the core by a plain pointer: the io_context inside it
// owns their pending operations, and a session owning the core would keep
// both alive forever. A Reply owns the core (and its session), so a handler
// may reply after the server is gone.
struct HttpServer::Impl {
  ServerOptions options;
  Handler handler;
  asio::io_context ioc;
  std::optional<asio::ssl::context> ssl;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;
  uint16_t port = 0;
  util::Mutex mutex;
  bool stopped GUARDED_BY(mutex) = false;
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> rejected{0};
  std::weak_ptr<Impl> self;
  // To close on stop(); expired entries are dropped as sessions start.
  std::vector<std::weak_ptr<SessionBase>> sessions GUARDED_BY(mutex);

  void add_session(const std::shared_ptr<SessionBase>& session) {
    util::MutexLock lock(mutex);
    std::erase_if(sessions, [](const auto& w) { return w.expired(); });
    sessions.push_back(session);
  }
  bool is_stopped() {
    util::MutexLock lock(mutex);
    return stopped;
  }
  void accept();
};

namespace {

// Holds what a Reply keeps alive. The session is released before the server
// core, whose io_context the session's socket belongs to.
struct ReplyState {
  std::shared_ptr<HttpServer::Impl> server;
  std::shared_ptr<SessionBase> session;
  std::atomic<bool> replied{false};
  ~ReplyState() { session.reset(); }
};

std::string_view reason_text(http::error e) {
  switch (e) {
    case http::error::body_limit:
      return "body too large";
    case http::error::header_limit:
      return "headers too large";
    default:
      return "malformed request";
  }
}

template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(HttpServer::Impl* server, Stream stream)
      : m_server(server), m_stream(std::move(stream)) {}

  void close_now() override { close(); }

  void run() {
    m_server->add_session(this->shared_from_this());
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(m_stream).expires_after(m_server->options.io_timeout);
      m_stream.async_handshake(asio::ssl::stream_base::server,
                               [self = this->shared_from_this()](beast::error_code ec) {
                                 if (!ec) {
                                   self->read_header();
                                 }
                               });
    } else {
      read_header();
    }
  }

  void send(ServerResponse response) override {
    asio::post(m_stream.get_executor(),
               [self = this->shared_from_this(), r = std::move(response)]() mutable {
                 self->write(std::move(r));
               });
  }

 private:
  tcp::socket& socket() { return beast::get_lowest_layer(m_stream).socket(); }

  void read_header() {
    m_parser.emplace();
    m_parser->body_limit(m_server->options.max_body_bytes);
    m_parser->header_limit(m_server->options.max_header_bytes);
    beast::get_lowest_layer(m_stream).expires_after(m_server->options.idle_timeout);
    http::async_read_header(
        m_stream, m_buffer, *m_parser,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    auto& req = m_parser->get();
    uint64_t limit = m_server->options.max_body_bytes;
    if (m_server->options.body_limit_for) {
      limit = std::min(limit,
                       m_server->options.body_limit_for(
                           std::string_view(req.method_string().data(), req.method_string().size()),
                           std::string_view(req.target().data(), req.target().size())));
      m_parser->body_limit(limit);
    }
    if (auto length = m_parser->content_length(); length && *length > limit) {
      reject(413, "body too large");
      return;
    }
    if (beast::iequals(req[http::field::expect], "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      beast::get_lowest_layer(m_stream).expires_after(m_server->options.io_timeout);
      http::async_write(m_stream, *cont,
                        [self = this->shared_from_this(), cont](beast::error_code e, size_t) {
                          if (e) {
                            self->close();
                            return;
                          }
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    beast::get_lowest_layer(m_stream).expires_after(m_server->options.io_timeout);
    http::async_read(
        m_stream, m_buffer, *m_parser,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      fail(ec);
      return;
    }
    m_server->requests.fetch_add(1, std::memory_order_relaxed);
    auto message = m_parser->release();
    m_keep_alive = message.keep_alive();
    ServerRequest req;
    req.method = std::string(message.method_string());
    req.target = std::string(message.target());
    auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) {
      req.query = req.target.substr(q + 1);
    }
    for (const auto& field : message) {
      req.headers.emplace_back(util::lowercase(std::string(field.name_string())),
                               std::string(field.value()));
    }
    req.body = std::move(message.body());
    beast::error_code peer_ec;
    auto peer = socket().remote_endpoint(peer_ec);
    if (!peer_ec) {
      req.peer = peer.address().to_string() + ":" + std::to_string(peer.port());
    }
    m_gone = std::make_shared<std::atomic<bool>>(false);
    req.client_gone = m_gone;
    m_handling = true;
    watch_for_close();
    beast::get_lowest_layer(m_stream).expires_never();

    auto state = std::make_shared<ReplyState>();
    state->server = m_server->self.lock();
    state->session = this->shared_from_this();
    Reply reply = [state](ServerResponse response) {
      if (state->replied.exchange(true) || state->server->is_stopped()) {
        return;
      }
      state->session->send(std::move(response));
    };
    try {
      m_server->handler(std::move(req), reply);
    } catch (const std::exception& e) {
      ServerResponse error;
      error.status = 500;
      error.body = R"({"error":"internal error","retry_elsewhere":true})";
      reply(std::move(error));
    }
  }

  // While the handler runs nothing is read; a readable socket then means the
  // client closed it (or sent the next request early: then stop watching).
  void watch_for_close() {
    socket().async_wait(
        tcp::socket::wait_read, [self = this->shared_from_this()](beast::error_code ec) {
          if (ec || !self->m_handling) {
            return;
          }
          char c;
          ssize_t n = ::recv(self->socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
          if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            self->m_gone->store(true);
          }
        });
  }

  void write(ServerResponse r) {
    m_handling = false;
    beast::error_code ignored;
    socket().cancel(ignored);  // the close watch
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    if (!r.content_type.empty()) {
      res->set(http::field::content_type, r.content_type);
    }
    for (auto& [name, value] : r.headers) {
      res->set(name, value);
    }
    bool keep = m_keep_alive && !r.close;
    res->keep_alive(keep);
    res->body() = std::move(r.body);
    res->prepare_payload();
    beast::get_lowest_layer(m_stream).expires_after(m_server->options.io_timeout);
    http::async_write(m_stream, *res,
                      [self = this->shared_from_this(), res, keep](beast::error_code ec, size_t) {
                        if (ec || !keep) {
                          self->close();
                          return;
                        }
                        self->read_header();
                      });
  }

  void fail(beast::error_code ec) {
    if (ec.category() == beast::error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      auto e = static_cast<http::error>(ec.value());
      int status = e == http::error::body_limit ? 413 : e == http::error::header_limit ? 431 : 400;
      reject(status, reason_text(e));
      return;
    }
    close();  // end of stream, timeout, reset: nothing to answer
  }

  void reject(int status, std::string_view reason) {
    m_server->rejected.fetch_add(1, std::memory_order_relaxed);
    m_keep_alive = false;
    ServerResponse r;
    r.status = status;
    r.body = std::string(R"({"error":")") + std::string(reason) + R"(","retry_elsewhere":false})";
    r.close = true;
    write(std::move(r));
  }

  void close() {
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  HttpServer::Impl* m_server;
  Stream m_stream;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  bool m_keep_alive = true;
  bool m_handling = false;
  std::shared_ptr<std::atomic<bool>> m_gone;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
      return;
    }
    if (!ec) {
      connections.fetch_add(1, std::memory_order_relaxed);
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (ssl) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            this, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *ssl))
            ->run();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(this, beast::tcp_stream(std::move(socket)))
            ->run();
      }
    }
    accept();
  });
}

expected<std::unique_ptr<HttpServer>, std::string> HttpServer::start(ServerOptions options,
                                                                     Handler handler) {
  auto impl = std::make_shared<Impl>();
  impl->self = impl;
  impl->options = std::move(options);
  impl->handler = std::move(handler);
  try {
    if (impl->options.tls) {
      impl->ssl.emplace(asio::ssl::context::tls_server);
      impl->ssl->set_options(asio::ssl::context::default_workarounds |
                             asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                             asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
      impl->ssl->use_certificate_chain(asio::buffer(impl->options.tls->cert_pem));
      impl->ssl->use_private_key(asio::buffer(impl->options.tls->key_pem), asio::ssl::context::pem);
    }
    tcp::resolver resolver(impl->ioc);
    auto endpoints = resolver.resolve(impl->options.host, std::to_string(impl->options.port),
                                      tcp::resolver::passive);
    if (endpoints.empty()) {
      return unexpected("cannot resolve " + impl->options.host);
    }
    tcp::endpoint endpoint = endpoints.begin()->endpoint();
    impl->acceptor.open(endpoint.protocol());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl->acceptor.bind(endpoint);
    impl->acceptor.listen(asio::socket_base::max_listen_connections);
    impl->port = impl->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    return unexpected(std::string(e.what()));
  }
  impl->accept();
  int n = std::max(1, impl->options.threads);
  for (int i = 0; i < n; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->ioc.run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : m_impl(std::move(impl)) {}

HttpServer::~HttpServer() {
  stop();
}

uint16_t HttpServer::port() const {
  return m_impl->port;
}

void HttpServer::stop() {
  {
    util::MutexLock lock(m_impl->mutex);
    if (m_impl->stopped) {
      return;
    }
    m_impl->stopped = true;
  }
  m_impl->ioc.stop();
  for (auto& t : m_impl->threads) {
    t.join();
  }
  m_impl->threads.clear();
  // No I/O thread runs now: close the listener and every connection from
  // here, so that clients see the server go at once.
  beast::error_code ignored;
  m_impl->acceptor.close(ignored);
  std::vector<std::weak_ptr<SessionBase>> sessions;
  {
    util::MutexLock lock(m_impl->mutex);
    sessions.swap(m_impl->sessions);
  }
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) {
      session->close_now();
    }
  }
}

ServerStats HttpServer::stats() const {
  return {m_impl->connections.load(), m_impl->requests.load(), m_impl->rejected.load()};
}

}  // namespace kiln::net
