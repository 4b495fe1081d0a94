// The only translation unit that includes Boost.Beast and Boost.Asio SSL: keep it that way so a change elsewhere
// never recompiles them.
#include "http/server.hpp"

#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <ctime>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <variant>

#include <sys/socket.h>
#include <unistd.h>

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

  // Idle upstream connections of forwarding, by endpoint name: descriptors released from their executor, so the
  // strand of whichever connection takes one adopts it.
  struct IdleConnection {
    int fd = -1;
    bool v6 = false;
    steady::time_point since;
  };
  std::mutex pool_mutex;
  std::unordered_map<std::string, std::vector<IdleConnection>> pool;  // guarded by pool_mutex
  // A live idle connection to `endpoint` (its descriptor), or nullopt.
  std::optional<IdleConnection> take_idle(const std::string& endpoint);
  // Keeps an upstream connection that finished an exchange cleanly for the next request to `endpoint`.
  void put_idle(const std::string& endpoint, beast::tcp_stream& stream);

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

  ~Impl() {
    for (auto& [_, idle] : pool) {
      for (const auto& c : idle) ::close(c.fd);
    }
  }
};

std::optional<Server::Impl::IdleConnection> Server::Impl::take_idle(const std::string& endpoint) {
  std::lock_guard lock(pool_mutex);
  auto it = pool.find(endpoint);
  if (it == pool.end()) return std::nullopt;
  auto& idle = it->second;
  while (!idle.empty()) {
    IdleConnection c = idle.back();
    idle.pop_back();
    if (steady::now() - c.since > options.forwarder->pool_idle_timeout) {
      ::close(c.fd);
      continue;
    }
    // A connection the upstream closed meanwhile reads as end of file (0) or fails; one with bytes waiting is
    // out of step. Only one that would block is fit to carry a request.
    char byte = 0;
    const ssize_t n = ::recv(c.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return c;
    ::close(c.fd);
  }
  return std::nullopt;
}

void Server::Impl::put_idle(const std::string& endpoint, beast::tcp_stream& stream) {
  stream.expires_never();
  tcp::socket& socket = stream.socket();
  beast::error_code ec;
  const bool v6 = socket.local_endpoint(ec).address().is_v6();
  if (ec) return;
  std::lock_guard lock(pool_mutex);
  auto& idle = pool[endpoint];
  if (idle.size() >= options.forwarder->max_idle_per_endpoint) return;  // the socket closes with its owner
  const int fd = socket.release(ec);
  if (ec) return;
  idle.push_back({fd, v6, steady::now()});
}

namespace {

// The interim answer to `Expect: 100-continue` (RFC 9110 section 10.1.1).
constexpr std::string_view k_continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

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
    // With forwarding the limit waits for the head: forwarded bodies stream without one (on_header). The largest
    // value, not none: Boost 1.74 compares a Content-Length with an empty limit as exceeding it.
    parser_->body_limit(server_.options.forwarder ? std::numeric_limits<std::uint64_t>::max()
                                                  : server_.options.max_body_bytes);
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
    if (server_.options.forwarder) {
      if (try_forward()) return;
      if (auto length = parser_->content_length(); length && *length > server_.options.max_body_bytes) {
        return on_read_error(bhttp::error::body_limit);
      }
      parser_->body_limit(server_.options.max_body_bytes);
    }
    const auto& msg = parser_->get();
    if (parser_->is_done()) return on_request();
    if (auto expect = msg.find(bhttp::field::expect);
        expect != msg.end() && beast::iequals(expect->value(), "100-continue")) {
      lowest().expires_after(server_.options.body_timeout);
      net::async_write(stream_, net::buffer(k_continue_line), [self = self_ptr()](beast::error_code e, std::size_t) {
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

  // Forwarding (http/forwarding.hpp) ------------------------------------------------------------------------

  // At a request's head: whether a forwarding route takes it. Then the edge's checks run on a worker and the body
  // is streamed upstream instead of being read here.
  bool try_forward() {
    const auto& msg = parser_->get();
    const std::string_view target(msg.target().data(), msg.target().size());
    RequestHead head;
    const std::string_view method(msg.method_string().data(), msg.method_string().size());
    head.method = parse_method(method);
    head.path = target.substr(0, target.find('?'));
    if (auto host = msg.find(bhttp::field::host); host != msg.end()) {
      std::string_view h(host->value().data(), host->value().size());
      // "[::1]:8080", "api.example.com:8080": the name without the port.
      const auto colon = h.rfind(':');
      if (colon != std::string_view::npos && h.find(']', colon) == std::string_view::npos) h = h.substr(0, colon);
      head.host = h;
    }
    if (auto version = msg.find("Atrium-Version"); version != msg.end()) {
      head.version = std::string_view(version->value().data(), version->value().size());
    }
    auto route = server_.options.forwarder->match(head);
    if (!route) return false;
    Request req;
    req.remote_address = remote_;
    fill_request_line(req, msg);
    req.keep_alive = msg.keep_alive();
    version_ = msg.version();
    head_ = req.method == Method::head;
    net::post(server_.workers, [self = self_ptr(), route = std::move(route), req = std::move(req)]() mutable {
      auto decision = self->server_.options.forwarder->admit(req, std::move(route));
      net::post(self->stream_.get_executor(),
                [self, decision = std::move(decision), keep_alive = req.keep_alive]() mutable {
                  self->on_admitted(std::move(decision), keep_alive);
                });
    });
    return true;
  }

  void on_admitted(std::variant<Response, std::shared_ptr<Exchange>> decision, bool keep_alive) {
    if (auto* refused = std::get_if<Response>(&decision)) {
      // The body was not read: only a connection whose request had none can carry another one.
      const bool body_read = parser_->is_done();
      return write(std::move(*refused), keep_alive && body_read, !body_read);
    }
    net::co_spawn(stream_.get_executor(),
                  relay(self_ptr(), std::get<std::shared_ptr<Exchange>>(std::move(decision)), keep_alive),
                  net::detached);
  }

  enum class After { next_request, close, answered, tunnel };

  static net::awaitable<void> relay(std::shared_ptr<Session> self, std::shared_ptr<Exchange> exchange,
                                    bool keep_alive) {
    Exchange::Summary summary;
    const auto started = steady::now();
    After after = After::close;
    try {
      after = co_await self->forward(*exchange, summary, keep_alive);
    } catch (const std::exception& e) {
      log::error("forwarding failed", {{"error", e.what()}});
    }
    summary.duration = steady::now() - started;
    if (exchange->finish_blocks) {
      net::post(self->server_.workers, [exchange, summary] { exchange->finish(summary); });
    } else {
      exchange->finish(summary);  // metrics and the log line: no thread hop for them
    }
    switch (after) {
      case After::answered: break;  // write() carries on
      case After::next_request:
        self->finish_request();
        self->read_request();
        break;
      case After::close:
      case After::tunnel: self->close(); break;
    }
  }

  // RFC 9110 section 7.6.1: fields for one hop only, never forwarded (framing is set by whoever serializes).
  static bool hop_by_hop(std::string_view name) {
    for (std::string_view h :
         {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
          "transfer-encoding", "upgrade", "content-length", "expect"}) {
      if (beast::iequals(name, h)) return true;
    }
    return false;
  }

  // The fields a Connection header names (hop-by-hop too).
  template <class Fields>
  static std::vector<std::string> connection_options(const Fields& fields) {
    std::vector<std::string> names;
    for (const auto& field : fields) {
      if (field.name() != bhttp::field::connection) continue;
      for (auto token : bhttp::token_list(field.value())) names.emplace_back(token.data(), token.size());
    }
    return names;
  }

  template <class Fields>
  static void strip_hop_by_hop(Fields& fields, bool keep_framing) {
    const auto named = connection_options(fields);
    for (auto it = fields.begin(); it != fields.end();) {
      const std::string_view name(it->name_string().data(), it->name_string().size());
      bool drop = hop_by_hop(name);
      if (keep_framing && (beast::iequals(name, "content-length") || beast::iequals(name, "transfer-encoding"))) {
        drop = false;
      }
      for (const auto& n : named) drop = drop || beast::iequals(name, n);
      it = drop ? fields.erase(it) : std::next(it);
    }
  }

  struct PumpResult {
    beast::error_code read;
    beast::error_code write;
  };

  static constexpr std::size_t k_relay_buffer = 65536;
  struct Buffer {
    std::unique_ptr<char[]> bytes;
    std::size_t size;
    char* data() const { return bytes.get(); }
  };

  // Streams one message's body from `in` (parsed by `p`) to `out` (serialized by `sr`), `buffer` at a time, the
  // head first.
  template <bool isRequest, class In, class Out>
  static net::awaitable<PumpResult> pump(In& in, beast::flat_buffer& in_buffer,
                                         bhttp::parser<isRequest, bhttp::buffer_body>& p, Out& out,
                                         bhttp::serializer<isRequest, bhttp::buffer_body>& sr, const Buffer& buffer,
                                         std::chrono::milliseconds read_timeout,
                                         std::chrono::milliseconds write_timeout, std::uint64_t& bytes) {
    PumpResult r;
    do {
      auto& body = p.get().body();
      if (!p.is_done()) {
        body.data = buffer.data();
        body.size = buffer.size;
        beast::get_lowest_layer(in).expires_after(read_timeout);
        co_await bhttp::async_read_some(in, in_buffer, p, net::redirect_error(net::use_awaitable, r.read));
        if (r.read == bhttp::error::need_buffer) r.read = {};
        if (r.read) co_return r;
        body.size = buffer.size - body.size;
        body.data = buffer.data();
        body.more = !p.is_done();
        bytes += body.size;
      } else {
        body.data = nullptr;
        body.size = 0;
        body.more = false;  // nothing (more) to send: the serializer finishes the message
      }
      beast::get_lowest_layer(out).expires_after(write_timeout);
      co_await bhttp::async_write(out, sr, net::redirect_error(net::use_awaitable, r.write));
      if (r.write == bhttp::error::need_buffer) r.write = {};
      if (r.write) co_return r;
    } while (!p.is_done() && !sr.is_done());
    co_return r;
  }

  // "100 Continue" to a client that waits for it before it sends its body.
  net::awaitable<void> send_continue(beast::error_code& ec) {
    lowest().expires_after(server_.options.body_timeout);
    co_await net::async_write(stream_, net::buffer(k_continue_line), net::redirect_error(net::use_awaitable, ec));
  }

  // Whether a Content-Type names JSON (application/json, application/problem+json, ...+json).
  static bool names_json(std::optional<std::string_view> type) {
    if (!type) return false;
    std::string t(type->substr(0, type->find(';')));
    for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!t.empty() && t.back() == ' ') t.pop_back();
    return t == "application/json" || t.ends_with("+json");
  }

  // Reads the rest of one message's body from `in` into a string: nullopt (the rest unread) when it passes `limit`.
  template <bool isRequest, class In>
  static net::awaitable<std::optional<std::string>> read_whole(In& in, beast::flat_buffer& in_buffer,
                                                               bhttp::parser<isRequest, bhttp::buffer_body>& p,
                                                               const Buffer& buffer, std::chrono::milliseconds timeout,
                                                               std::uint64_t limit, beast::error_code& ec) {
    std::string out;
    while (!p.is_done()) {
      auto& body = p.get().body();
      body.data = buffer.data();
      body.size = buffer.size;
      beast::get_lowest_layer(in).expires_after(timeout);
      co_await bhttp::async_read_some(in, in_buffer, p, net::redirect_error(net::use_awaitable, ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return std::nullopt;
      const std::size_t n = buffer.size - body.size;
      if (out.size() + n > limit) co_return std::nullopt;
      out.append(buffer.data(), n);
    }
    co_return out;
  }

  // Copies bytes one way until either side ends or stays idle past `idle`, then closes both.
  template <class From, class To>
  static net::awaitable<void> splice(From& from, To& to, std::chrono::milliseconds idle) {
    std::vector<char> buffer(16384);
    beast::error_code ec;
    for (;;) {
      beast::get_lowest_layer(from).expires_after(idle);
      const std::size_t n =
          co_await from.async_read_some(net::buffer(buffer), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
      beast::get_lowest_layer(to).expires_after(idle);
      co_await net::async_write(to, net::buffer(buffer.data(), n), net::redirect_error(net::use_awaitable, ec));
      if (ec) break;
    }
    beast::error_code ignored;
    beast::get_lowest_layer(from).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(to).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(from).cancel();
    beast::get_lowest_layer(to).cancel();
  }

  net::awaitable<After> forward(Exchange& ex, Exchange::Summary& sum, bool client_keep_alive) {
    const auto awaitable = [](beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); };
    beast::error_code ec;
    bhttp::request_parser<bhttp::buffer_body> in(std::move(*parser_));
    parser_.reset();
    in.body_limit(std::numeric_limits<std::uint64_t>::max());  // streamed: no limit of its own
    auto& req = in.get();
    const std::string upgrade_protocol = [&] {
      for (const auto& option : connection_options(req)) {
        if (beast::iequals(option, "upgrade")) return std::string(req[bhttp::field::upgrade]);
      }
      return std::string();
    }();
    const bool expect_continue = beast::iequals(req[bhttp::field::expect], "100-continue");
    const bool chunked = in.chunked();
    const auto length = in.content_length();
    // The head sent upstream: the policy's target and fields, the client's framing.
    req.target(ex.target);
    req.version(11);
    req.clear();
    for (const auto& [name, value] : ex.headers.fields()) {
      if (!hop_by_hop(name)) req.insert(name, value);
    }
    if (chunked) {
      req.chunked(true);
    } else if (length) {
      req.content_length(*length);
    }
    if (!upgrade_protocol.empty()) {
      req.set(bhttp::field::connection, "Upgrade");
      req.set(bhttp::field::upgrade, upgrade_protocol);
    }
    // Both directions take turns with one buffer; left uninitialised (no 64 KiB memset per request).
    Buffer buffer{std::make_unique_for_overwrite<char[]>(k_relay_buffer), k_relay_buffer};
    // A JSON body to transform (version changes) is read whole before any upstream sees it.
    std::optional<std::string> whole;
    bool continue_sent = false;
    if (ex.transform_request && upgrade_protocol.empty() && (chunked || length.value_or(0) > 0) &&
        names_json(ex.headers.get("Content-Type"))) {
      if (expect_continue) {
        co_await send_continue(ec);
        if (ec) co_return After::close;
        continue_sent = true;
      }
      auto body =
          co_await read_whole(stream_, buffer_, in, buffer, server_.options.body_timeout, ex.max_transform_bytes, ec);
      if (ec) co_return After::close;
      if (!body) {
        Response r = ex.failure(413, "The request body is larger than the gateway transforms.");
        sum.status = r.status;
        write(std::move(r), false, true);
        co_return After::answered;
      }
      auto changed = ex.transform_request(*body);
      whole = changed ? std::move(*changed) : std::move(*body);
      req.chunked(false);
      req.content_length(whole->size());
    }
    std::shared_ptr<beast::tcp_stream> up;
    beast::flat_buffer up_buffer;
    std::optional<bhttp::response_parser<bhttp::buffer_body>> answer;
    std::optional<Endpoint> endpoint;
    int failed_status = 503;
    std::string failed_detail = "No endpoint of the upstream is available.";
    for (int attempt = 0; attempt < std::max(1, ex.max_attempts); ++attempt) {
      // A body that has started to stream cannot be sent again.
      if (attempt > 0 && sum.request_bytes > 0) break;
      endpoint = ex.pick(attempt);
      if (!endpoint) break;
      sum.attempts = attempt + 1;
      sum.endpoint = endpoint->name;
      up.reset();
      up_buffer.clear();
      answer.reset();
      if (auto idle = server_.take_idle(endpoint->name)) {
        tcp::socket socket(stream_.get_executor());
        socket.assign(idle->v6 ? tcp::v6() : tcp::v4(), idle->fd, ec);
        if (ec) {
          ::close(idle->fd);
        } else {
          up = std::make_shared<beast::tcp_stream>(std::move(socket));
        }
      }
      if (!up) {
        tcp::resolver resolver(stream_.get_executor());
        auto resolved = co_await resolver.async_resolve(endpoint->host, std::to_string(endpoint->port), awaitable(ec));
        if (!ec) {
          up = std::make_shared<beast::tcp_stream>(stream_.get_executor());
          up->expires_after(ex.connect_timeout);
          co_await up->async_connect(resolved, awaitable(ec));
        }
        if (ec) {
          ex.attempt_done(*endpoint, AttemptResult::connect_failed);
          failed_status = 502;
          failed_detail = "The upstream could not be reached.";
          continue;  // nothing was sent: another endpoint may take it
        }
        up->socket().set_option(tcp::no_delay(true), ec);
      }
      if (expect_continue && !continue_sent && !in.is_done()) {
        co_await send_continue(ec);
        if (ec) co_return After::close;
        continue_sent = true;
      }
      PumpResult sent;
      if (whole) {
        bhttp::request<bhttp::string_body> full(req.base(), *whole);
        up->expires_after(ex.read_timeout);
        co_await bhttp::async_write(*up, full, awaitable(sent.write));
        if (!sent.write) sum.request_bytes = whole->size();
      } else {
        bhttp::request_serializer<bhttp::buffer_body> sr(req);
        sent = co_await pump(stream_, buffer_, in, *up, sr, buffer, server_.options.body_timeout, ex.read_timeout,
                             sum.request_bytes);
      }
      if (sent.read) co_return After::close;  // the client went away: not the upstream's failure
      if (!sent.write) {
        answer.emplace();
        answer->body_limit(std::numeric_limits<std::uint64_t>::max());
        if (head_) answer->skip(true);
        up->expires_after(ex.read_timeout);
        co_await bhttp::async_read_header(*up, up_buffer, *answer, awaitable(ec));
        // Body bytes that arrived with the head wait for a buffer (pump() gives one): not an error.
        if (ec == bhttp::error::need_buffer) ec = {};
        // Interim answers (1xx other than 101) are not passed on; the final one follows.
        while (!ec && answer->get().result_int() >= 100 && answer->get().result_int() < 200 &&
               answer->get().result_int() != 101) {
          answer.emplace();
          answer->body_limit(std::numeric_limits<std::uint64_t>::max());
          if (head_) answer->skip(true);
          co_await bhttp::async_read_header(*up, up_buffer, *answer, awaitable(ec));
          if (ec == bhttp::error::need_buffer) ec = {};
        }
      } else {
        ec = sent.write;
      }
      const bool resendable = ex.may_resend && sum.request_bytes == 0;
      if (ec) {
        const bool timed_out = ec == beast::error::timeout;
        log::warn("upstream attempt failed", {{"endpoint", endpoint->name}, {"error", ec.message()}});
        ex.attempt_done(*endpoint, timed_out ? AttemptResult::timeout : AttemptResult::reset);
        failed_status = timed_out ? 504 : 502;
        failed_detail = timed_out ? "The upstream did not answer in time." : "The upstream closed the connection.";
        answer.reset();
        // Whether the upstream saw the request is unknown (even on a reused connection it may have closed just
        // after reading it): only a request that may be sent twice goes again.
        if (resendable) continue;
        break;
      }
      const int status = answer->get().result_int();
      if (ex.resend_on_5xx && resendable && (status == 502 || status == 503 || status == 504) &&
          attempt + 1 < ex.max_attempts) {
        ex.attempt_done(*endpoint, AttemptResult::server_error);
        failed_status = status;
        failed_detail = "The upstream answered " + std::to_string(status) + ".";
        answer.reset();
        continue;
      }
      break;  // its outcome is reported once its body has gone through
    }
    if (!answer) {
      Response r = ex.failure(failed_status, failed_detail);
      sum.status = r.status;
      const bool body_read = in.is_done();
      write(std::move(r), client_keep_alive && body_read, !body_read);
      co_return After::answered;
    }

    auto& res = answer->get();
    const int status = res.result_int();
    const bool upstream_keep_alive = res.keep_alive();
    sum.status = status;
    sum.upstream_answered = true;
    if (status == 101 && !upgrade_protocol.empty()) {
      // Upgraded (WebSocket): the answer's head, then bytes both ways until either side ends.
      for (const auto& name : ex.response_remove) res.erase(name);
      for (const auto& [name, value] : ex.response_headers.fields()) res.set(name, value);
      bhttp::response_serializer<bhttp::buffer_body> sr(res);
      res.body().data = nullptr;
      res.body().size = 0;
      res.body().more = false;
      lowest().expires_after(server_.options.body_timeout);
      co_await bhttp::async_write_header(stream_, sr, awaitable(ec));
      if (ec) co_return After::close;
      if (up_buffer.size() > 0) {
        co_await net::async_write(stream_, up_buffer.data(), awaitable(ec));
        if (ec) co_return After::close;
      }
      if (buffer_.size() > 0) {
        co_await net::async_write(*up, buffer_.data(), awaitable(ec));
        if (ec) co_return After::close;
        buffer_.consume(buffer_.size());
      }
      ex.attempt_done(*endpoint, AttemptResult::answered);
      auto self = self_ptr();
      auto other_done = std::make_shared<bool>(false);
      auto wake = std::make_shared<net::steady_timer>(stream_.get_executor(), steady::time_point::max());
      net::co_spawn(
          stream_.get_executor(),
          [](std::shared_ptr<Session> s, std::shared_ptr<beast::tcp_stream> u, std::chrono::milliseconds idle,
             std::shared_ptr<bool> done, std::shared_ptr<net::steady_timer> timer) -> net::awaitable<void> {
            co_await splice(*u, s->stream_, idle);
            *done = true;
            timer->cancel();
          }(self, up, ex.tunnel_idle_timeout, other_done, wake),
          net::detached);
      co_await splice(stream_, *up, ex.tunnel_idle_timeout);
      if (!*other_done) co_await wake->async_wait(awaitable(ec));
      co_return After::tunnel;
    }

    if (status >= 400 && !head_ && answer->is_done() && answer->content_length().value_or(1) == 0) {
      // An error without a body: the client gets problem+json like every other refusal.
      ex.attempt_done(*endpoint, status >= 500 ? AttemptResult::server_error : AttemptResult::answered);
      if (upstream_keep_alive && in.is_done()) {
        server_.put_idle(endpoint->name, *up);
      }
      const bool body_read = in.is_done();
      write(ex.bodiless_error(status), client_keep_alive && body_read, !body_read);
      co_return After::answered;
    }
    if (ex.transform_response && !head_ && status >= 200 && status != 204 && status != 304 && names_json([&] {
          const auto type = res[bhttp::field::content_type];
          return std::string_view(type.data(), type.size());
        }())) {
      // A JSON answer to transform: read whole, rewritten, sent with its new length.
      auto body = co_await read_whole(*up, up_buffer, *answer, buffer, ex.read_timeout, ex.max_transform_bytes, ec);
      if (ec) {
        ex.attempt_done(*endpoint, ec == beast::error::timeout ? AttemptResult::timeout : AttemptResult::reset);
        Response r = ex.failure(ec == beast::error::timeout ? 504 : 502, "The upstream's answer broke off.");
        sum.status = r.status;
        write(std::move(r), false, !in.is_done());
        co_return After::answered;
      }
      ex.attempt_done(*endpoint, status >= 500 ? AttemptResult::server_error : AttemptResult::answered);
      if (!body) {
        Response r = ex.failure(502, "The upstream's answer is larger than the gateway transforms.");
        sum.status = r.status;
        write(std::move(r), false, !in.is_done());
        co_return After::answered;
      }
      if (upstream_keep_alive && in.is_done()) server_.put_idle(endpoint->name, *up);
      strip_hop_by_hop(res, /*keep_framing=*/false);
      Response out;
      out.status = status;
      for (const auto& field : res) {
        const std::string_view name(field.name_string().data(), field.name_string().size());
        if (beast::iequals(name, "date") || beast::iequals(name, "server")) continue;  // write() sets its own
        out.headers.add(std::string(name), std::string(field.value().data(), field.value().size()));
      }
      for (const auto& name : ex.response_remove) out.headers.erase(name);
      for (const auto& [name, value] : ex.response_headers.fields()) out.headers.set(name, value);
      auto changed = ex.transform_response(*body);
      out.body = changed ? std::move(*changed) : std::move(*body);
      sum.response_bytes = out.body.size();
      const bool body_read = in.is_done();
      write(std::move(out), client_keep_alive && body_read, !body_read);
      co_return After::answered;
    }
    strip_hop_by_hop(res, /*keep_framing=*/true);
    for (const auto& name : ex.response_remove) res.erase(name);
    for (const auto& [name, value] : ex.response_headers.fields()) res.set(name, value);
    bool keep_client = client_keep_alive && !server_.draining;
    const bool bodiless = head_ || status == 204 || status == 304 || (status >= 100 && status < 200);
    if (!bodiless && !answer->content_length() && !answer->chunked()) {
      // Read to the upstream's end of file: chunked to an HTTP/1.1 client, else the connection's end marks it.
      if (version_ == 11) {
        res.chunked(true);
      } else {
        keep_client = false;
      }
    }
    res.version(version_ == 10 ? 10 : 11);
    bhttp::response_serializer<bhttp::buffer_body> sr(res);
    // The client's body may still be arriving (an upstream may answer early): the connection ends after it.
    if (!in.is_done()) keep_client = false;
    res.keep_alive(keep_client);
    const auto relayed = co_await pump(*up, up_buffer, *answer, stream_, sr, buffer, ex.read_timeout,
                                       server_.options.body_timeout, sum.response_bytes);
    if (relayed.read) {
      ex.attempt_done(*endpoint, relayed.read == beast::error::timeout ? AttemptResult::timeout : AttemptResult::reset);
      co_return After::close;
    }
    ex.attempt_done(*endpoint, status >= 500 ? AttemptResult::server_error : AttemptResult::answered);
    if (relayed.write) co_return After::close;
    if (upstream_keep_alive && answer->is_done() && in.is_done()) {
      server_.put_idle(endpoint->name, *up);
    }
    co_return keep_client ? After::next_request : After::close;
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
