// The only translation unit that includes Boost.Beast and Boost.Asio SSL: keep it that way so a change elsewhere
// never recompiles them.
#include "http/server.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <ctime>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "core/log.hpp"
#include "http/problem.hpp"

namespace atrium::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

// "Fri, 27 Nov 2026 10:00:00 GMT", recomputed at most once a second per thread.
const std::string& http_date() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached.assign(buf, n);
    cached_second = now;
  }
  return cached;
}

class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection if it is between requests; otherwise it closes after the current response.
  virtual void drain() = 0;
};

}  // namespace

struct Server::Impl {
  Impl(ServerOptions o, std::shared_ptr<const Dispatcher> d)
      : options(std::move(o)),
        dispatcher(std::move(d)),
        ioc(std::max(1, options.io_threads)),
        acceptor(ioc),
        workers(static_cast<std::size_t>(std::max(1, options.worker_threads))),
        signals(ioc),
        drain_timer(ioc) {}

  // Declared before the io_context: sessions still queued in it when it is destroyed use these.
  ServerOptions options;
  std::shared_ptr<const Dispatcher> dispatcher;
  std::optional<ssl::context> tls;
  // Contexts built for SNI host names (options.certificate_for), by lower-case host name.
  struct SniContext {
    std::shared_ptr<const void> owner;
    std::shared_ptr<ssl::context> context;
  };
  std::mutex sni_mutex;
  std::unordered_map<std::string, SniContext> sni_contexts;  // guarded by sni_mutex
  // The context for an SNI host name (null: the default). Shared: a context replaced meanwhile by another
  // handshake stays alive until this one has switched to it (SSL_set_SSL_CTX takes its own reference).
  std::shared_ptr<ssl::context> sni_context(std::string host);
  std::atomic<bool> draining{false};
  std::atomic<int> active_requests{0};
  std::function<void()> drain_callback;
  steady::time_point drain_deadline;
  std::mutex sessions_mutex;
  std::unordered_map<SessionBase*, std::weak_ptr<SessionBase>> sessions;

  net::io_context ioc;
  tcp::acceptor acceptor;
  net::thread_pool workers;
  net::signal_set signals;
  net::steady_timer drain_timer;

  void add_session(const std::shared_ptr<SessionBase>& s) {
    std::lock_guard lock(sessions_mutex);
    sessions.emplace(s.get(), s);
  }
  void remove_session(SessionBase* s) {
    std::lock_guard lock(sessions_mutex);
    sessions.erase(s);
  }
  std::size_t session_count() {
    std::lock_guard lock(sessions_mutex);
    return sessions.size();
  }

  void accept();
  void begin_drain();
  void watch_drain();
};

namespace {

// One connection. Stream is beast::tcp_stream or beast::ssl_stream<beast::tcp_stream>. Every member runs on the
// connection's strand.
template <class Stream>
class Session final : public SessionBase {
 public:
  Session(Stream stream, Server::Impl& server, std::string remote)
      : stream_(std::move(stream)), server_(server), remote_(std::move(remote)) {}

  ~Session() override {
    finish_request();
    server_.remove_session(this);
  }

  void start() {
    net::dispatch(stream_.get_executor(), [self = self_ptr()] { self->handshake(); });
  }

  void drain() override {
    net::post(stream_.get_executor(), [self = self_ptr()] {
      if (!self->in_request_ && !self->header_started_) self->close();
    });
  }

 private:
  static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

  std::shared_ptr<Session> self_ptr() { return std::static_pointer_cast<Session>(shared_from_this()); }
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  void handshake() {
    if constexpr (is_tls) {
      lowest().expires_after(server_.options.header_timeout);
      stream_.async_handshake(ssl::stream_base::server, [self = self_ptr()](beast::error_code ec) {
        if (ec) return self->close();
        self->read_request();
      });
    } else {
      read_request();
    }
  }

  void read_request() {
    if (server_.draining && buffer_.size() == 0) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    header_started_ = buffer_.size() > 0;
    if (header_started_) return read_header();
    // Between requests the idle timeout applies; the header timeout starts with the first byte.
    lowest().expires_after(server_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(8192), [self = self_ptr()](beast::error_code ec, std::size_t n) {
      self->buffer_.commit(n);
      if (ec) return self->on_read_error(ec);
      self->header_started_ = true;
      self->read_header();
    });
  }

  void read_header() {
    lowest().expires_after(server_.options.header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = self_ptr()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    begin_request();
    const auto& msg = parser_->get();
    if (parser_->is_done()) return on_request();
    if (auto expect = msg.find(bhttp::field::expect);
        expect != msg.end() && beast::iequals(expect->value(), "100-continue")) {
      static const std::string k_continue = "HTTP/1.1 100 Continue\r\n\r\n";
      lowest().expires_after(server_.options.body_timeout);
      net::async_write(stream_, net::buffer(k_continue), [self = self_ptr()](beast::error_code e, std::size_t) {
        if (e) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    lowest().expires_after(server_.options.body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_, [self = self_ptr()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read_error(ec);
      self->on_request();
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::header_limit) {
      return reject(
          431, "header-too-large", "Request Header Fields Too Large",
          "The request header section exceeds " + std::to_string(server_.options.max_header_bytes) + " bytes.");
    }
    if (ec == bhttp::error::body_limit) {
      return reject(413, "body-too-large", "Content Too Large",
                    "The request body exceeds " + std::to_string(server_.options.max_body_bytes) + " bytes.");
    }
    if (ec == beast::error::timeout || ec == net::error::operation_aborted || ec == bhttp::error::end_of_stream ||
        ec == net::error::eof || ec.category() == net::error::get_system_category() ||
        ec.category() == net::error::get_misc_category() || ec.category() == net::error::get_ssl_category() ||
        ec == net::ssl::error::stream_truncated) {
      // Peer went away, was too slow (slow headers or body, idle keep-alive) or we are draining: just close.
      return close();
    }
    if (ec == bhttp::error::partial_message) return close();
    return reject(400, "malformed-request", "Bad Request", "The request is not valid HTTP/1.1: " + ec.message() + ".");
  }

  void begin_request() {
    if (!in_request_) {
      in_request_ = true;
      server_.active_requests.fetch_add(1);
    }
  }

  void finish_request() {
    if (in_request_) {
      in_request_ = false;
      server_.active_requests.fetch_sub(1);
    }
  }

  Request partial_request() {
    Request req;
    req.remote_address = remote_;
    req.keep_alive = false;
    if (parser_ && parser_->is_header_done()) {
      const auto& msg = parser_->get();
      fill_request_line(req, msg);
    } else {
      req.method = Method::other;
      req.method_text = "-";
    }
    return req;
  }

  template <class Message>
  static void fill_request_line(Request& req, const Message& msg) {
    req.method_text = std::string(msg.method_string());
    req.method = parse_method(req.method_text);
    req.target = std::string(msg.target());
    const auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    for (const auto& field : msg) req.headers.add(std::string(field.name_string()), std::string(field.value()));
  }

  void reject(int status, std::string_view slug, std::string_view title, std::string detail) {
    begin_request();
    Request req = partial_request();
    version_ = 11;
    head_ = false;
    Response res = server_.dispatcher->reject(req, status, slug, title, detail);
    write(std::move(res), /*keep_alive=*/false, /*linger=*/true);
  }

  void on_request() {
    auto msg = parser_->release();
    Request req;
    req.remote_address = remote_;
    fill_request_line(req, msg);
    req.keep_alive = msg.keep_alive();
    req.body = std::move(msg.body());
    version_ = msg.version();
    head_ = req.method == Method::head;
    const bool keep_alive = req.keep_alive;
    auto prepared = server_.dispatcher->prepare(req);
    if (prepared.execution == Execution::io) {
      Response res = server_.dispatcher->dispatch(req, prepared);
      return write(std::move(res), keep_alive, false);
    }
    net::post(server_.workers,
              [self = self_ptr(), req = std::move(req), prepared = std::move(prepared), keep_alive]() mutable {
                Response res = self->server_.dispatcher->dispatch(req, prepared);
                net::post(self->stream_.get_executor(), [self, res = std::move(res), keep_alive]() mutable {
                  self->write(std::move(res), keep_alive, false);
                });
              });
  }

  void write(Response r, bool keep_alive, bool linger) {
    response_ = {};
    response_.result(static_cast<unsigned>(r.status));
    response_.reason(reason_phrase(r.status));
    response_.version(version_ == 10 ? 10 : 11);
    response_.set(bhttp::field::server, "atrium");
    response_.set(bhttp::field::date, http_date());
    for (auto& [name, value] : r.headers.fields()) response_.insert(name, value);
    const std::size_t length = r.body.size();
    if (!head_) response_.body() = std::move(r.body);
    response_.keep_alive(keep_alive && !server_.draining);
    if (r.status != 204 && r.status != 304 && !(r.status >= 100 && r.status < 200)) {
      response_.content_length(length);
    }
    lowest().expires_after(server_.options.body_timeout);
    bhttp::async_write(stream_, response_, [self = self_ptr(), linger](beast::error_code ec, std::size_t) {
      self->on_written(ec, linger);
    });
  }

  void on_written(beast::error_code ec, bool linger) {
    const bool keep = response_.keep_alive();
    finish_request();
    if (ec) return close();
    if (!keep) return linger ? lingering_close() : graceful_close();
    read_request();
  }

  // After refusing a request whose body may still be arriving: stop sending, then read and discard for a
  // moment, so the client sees our answer instead of a reset.
  void lingering_close() {
    if constexpr (is_tls) {
      return graceful_close();
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      lowest().expires_after(std::chrono::seconds(1));
      discard();
    }
  }

  void discard() {
    scratch_.resize(16384);
    stream_.async_read_some(net::buffer(scratch_), [self = self_ptr()](beast::error_code ec, std::size_t n) {
      self->discarded_ += n;
      if (ec || self->discarded_ > (4u << 20)) return self->close();
      self->discard();
    });
  }

  void graceful_close() {
    if constexpr (is_tls) {
      lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = self_ptr()](beast::error_code) { self->close(); });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      close();
    }
  }

  void close() {
    beast::error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    lowest().socket().close(ignored);
    finish_request();
  }

  Stream stream_;
  Server::Impl& server_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  std::vector<char> scratch_;
  std::size_t discarded_ = 0;
  unsigned version_ = 11;
  bool head_ = false;
  bool header_started_ = false;
  bool in_request_ = false;
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors or similar: back off briefly instead of spinning.
      log::warn("accept failed", {{"error", ec.message()}});
      auto timer = std::make_shared<net::steady_timer>(ioc, std::chrono::milliseconds(50));
      timer->async_wait([this, timer](beast::error_code) { accept(); });
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const auto endpoint = socket.remote_endpoint(ignored);
    std::string remote = ignored ? std::string("-") : endpoint.address().to_string();
    if (draining) {
      socket.close(ignored);
      return;
    }
    std::shared_ptr<SessionBase> session;
    if (tls) {
      auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
          beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls), *this, std::move(remote));
      add_session(s);
      s->start();
    } else {
      auto s =
          std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), *this, std::move(remote));
      add_session(s);
      s->start();
    }
    accept();
  });
}

void Server::Impl::begin_drain() {
  if (draining.exchange(true)) return;
  net::post(ioc, [this] {
    log::info("draining", {{"in_flight", active_requests.load()}});
    if (drain_callback) drain_callback();
    beast::error_code ignored;
    acceptor.close(ignored);
    signals.cancel(ignored);
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      std::lock_guard lock(sessions_mutex);
      for (auto& [_, weak] : sessions) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->drain();
    drain_deadline = steady::now() + options.drain_timeout;
    watch_drain();
  });
}

void Server::Impl::watch_drain() {
  if ((active_requests.load() == 0 && session_count() == 0) || steady::now() >= drain_deadline) {
    if (active_requests.load() > 0) {
      log::warn("drain timeout reached", {{"abandoned_requests", active_requests.load()}});
    }
    ioc.stop();
    return;
  }
  drain_timer.expires_after(std::chrono::milliseconds(10));
  drain_timer.async_wait([this](beast::error_code) { watch_drain(); });
}

namespace {

// TLS 1.3 only, with the three suites docs/configuration.md lists.
void restrict_to_tls13(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_tlsv1_2);
  SSL_CTX* ctx = context.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256") !=
          1) {
    throw std::runtime_error("TLS: cannot restrict the context to TLS 1.3");
  }
}

// OpenSSL's server-name callback: switches the handshake to the named host's context when there is one.
int on_server_name(SSL* ssl, int* /*alert*/, void* arg) {
  auto* impl = static_cast<Server::Impl*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  std::string host(name);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  if (auto context = impl->sni_context(std::move(host))) SSL_set_SSL_CTX(ssl, context->native_handle());
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

std::shared_ptr<ssl::context> Server::Impl::sni_context(std::string host) {
  auto certificate = options.certificate_for(host);
  std::lock_guard lock(sni_mutex);
  if (!certificate) {
    sni_contexts.erase(host);
    return nullptr;
  }
  auto it = sni_contexts.find(host);
  if (it != sni_contexts.end() && it->second.owner == certificate->owner) return it->second.context;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  try {
    restrict_to_tls13(*context);
  } catch (const std::exception&) {
    return nullptr;
  }
  beast::error_code ec;
  context->use_certificate_chain(net::buffer(certificate->chain_pem.data(), certificate->chain_pem.size()), ec);
  if (!ec) {
    context->use_private_key(net::buffer(certificate->key_pem.data(), certificate->key_pem.size()), ssl::context::pem,
                             ec);
  }
  if (ec) {
    log::warn("TLS: the certificate for an SNI host name cannot be loaded; presenting the default",
              {{"host", host}, {"error", ec.message()}});
    return nullptr;
  }
  if (sni_contexts.size() >= 10'000) sni_contexts.clear();  // host names come and go; bound the cache
  sni_contexts[std::move(host)] = SniContext{certificate->owner, context};
  return context;
}

Server::Server(ServerOptions options, std::shared_ptr<const Dispatcher> dispatcher)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(dispatcher))) {
  Impl& s = *impl_;
  if (!s.options.tls_cert_file.empty()) {
    s.tls.emplace(ssl::context::tls_server);
    restrict_to_tls13(*s.tls);
    if (s.options.certificate_for) {
      SSL_CTX_set_tlsext_servername_callback(s.tls->native_handle(), on_server_name);
      SSL_CTX_set_tlsext_servername_arg(s.tls->native_handle(), &s);
    }
    beast::error_code ec;
    s.tls->use_certificate_chain_file(s.options.tls_cert_file, ec);
    if (ec) throw std::runtime_error("TLS certificate " + s.options.tls_cert_file + ": " + ec.message());
    s.tls->use_private_key_file(s.options.tls_key_file, ssl::context::pem, ec);
    if (ec) throw std::runtime_error("TLS key " + s.options.tls_key_file + ": " + ec.message());
  }
  beast::error_code ec;
  const auto address = net::ip::make_address(s.options.host, ec);
  if (ec) throw std::runtime_error("listen address " + s.options.host + ": " + ec.message());
  const tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) + ": " +
                             ec.message());
  }
}

Server::~Server() {
  impl_->workers.stop();
  impl_->workers.join();
}

std::uint16_t Server::port() const {
  beast::error_code ec;
  const auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? impl_->options.port : endpoint.port();
}

void Server::on_drain(std::function<void()> callback) { impl_->drain_callback = std::move(callback); }

bool Server::draining() const { return impl_->draining.load(); }

void Server::shutdown() { impl_->begin_drain(); }

void Server::run() {
  Impl& s = *impl_;
  if (s.options.handle_signals) {
    s.signals.add(SIGTERM);
    s.signals.add(SIGINT);
    s.signals.async_wait([&s](beast::error_code ec, int signal) {
      if (ec) return;
      log::info("signal received", {{"signal", signal}});
      s.begin_drain();
    });
  }
  s.accept();
  std::vector<std::thread> threads;
  for (int i = 1; i < std::max(1, s.options.io_threads); ++i) threads.emplace_back([&s] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
  // Handlers still running on workers after a drain timeout are joined by ~Server; their replies are dropped.
}

}  // namespace atrium::http
