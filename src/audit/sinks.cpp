#include "audit/sink.hpp"
#include "core/sigpipe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace atrium::audit {

namespace {

using Deadline = std::chrono::steady_clock::time_point;

// strerror, thread-safe (GNU strerror_r).
std::string errno_text(int err) {
  char buffer[256];
  return std::string(strerror_r(err, buffer, sizeof buffer));
}

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// ---------------------------------------------------------------------------------------------------------------
// File sink

class FileSink final : public Sink {
 public:
  explicit FileSink(FileSinkOptions options) : options_(std::move(options)) {}

  std::string_view name() const override { return "file"; }

  // Opens (creating) the file and learns its size. The directory is synced so a newly created file survives a
  // crash along with the data later synced into it.
  Result<void> open() {
    UniqueFd fd(::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) return io_error("open", errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return io_error("stat", errno);
    if (auto synced = sync_directory(); !synced) return synced;
    fd_ = std::move(fd);
    size_ = st.st_size;
    return {};
  }

  Result<void> write(std::span<const std::string> lines) override {
    if (lines.empty()) return {};
    if (!fd_) {
      if (auto opened = open(); !opened) return opened;
    }
    std::size_t bytes = 0;
    for (const auto& line : lines) bytes += line.size() + 1;
    if (size_ > 0 && size_ + static_cast<std::int64_t>(bytes) > options_.max_bytes) {
      if (auto rotated = rotate(); !rotated) return rotated;
    }
    std::string batch;
    batch.reserve(bytes + 1);
    if (torn_) batch += '\n';  // ends the fragment a failed batch left behind, so this batch starts a line
    for (const auto& line : lines) {
      batch += line;
      batch += '\n';
    }
    std::size_t done = 0;
    while (done < batch.size()) {
      const ssize_t n = ::write(fd_.get(), batch.data() + done, batch.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        discard_partial(done);
        return io_error("write", err);
      }
      done += static_cast<std::size_t>(n);
    }
    size_ += static_cast<std::int64_t>(done);
    torn_ = false;
    if (::fdatasync(fd_.get()) != 0) return io_error("fdatasync", errno);
    return {};
  }

 private:
  // After a write that stopped part-way, cuts the file back to where the batch started. When that fails the
  // fragment stays, and the next batch starts with a newline so its first line is whole.
  void discard_partial(std::size_t written) {
    if (written == 0) return;
    if (::ftruncate(fd_.get(), size_) == 0) return;
    size_ += static_cast<std::int64_t>(written);
    torn_ = true;
  }

  // path.<max_files-1> -> path.<max_files> (replacing it), ..., path -> path.1, then a new path.
  Result<void> rotate() {
    for (int i = options_.max_files - 1; i >= 1; --i) {
      const std::string from = numbered(i);
      const std::string to = numbered(i + 1);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
        const int err = errno;
        return io_error(fmt::format("rename {} to {}", from, to), err);
      }
    }
    const std::string first = numbered(1);
    if (::rename(options_.path.c_str(), first.c_str()) != 0 && errno != ENOENT) {
      const int err = errno;
      return io_error(fmt::format("rename to {}", first), err);
    }
    fd_.reset();
    size_ = 0;
    torn_ = false;
    return open();
  }

  Result<void> sync_directory() const {
    std::string dir = std::filesystem::path(options_.path).parent_path().string();
    if (dir.empty()) dir = ".";
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      const int err = errno;
      return io_error(fmt::format("open directory {}", dir), err);
    }
    if (::fsync(fd.get()) != 0) {
      const int err = errno;
      return io_error(fmt::format("fsync directory {}", dir), err);
    }
    return {};
  }

  std::string numbered(int n) const { return fmt::format("{}.{}", options_.path, n); }

  std::unexpected<Error> io_error(std::string_view what, int err) const {
    return fail(Errc::unavailable, fmt::format("audit file {}: {}: {}", options_.path, what, errno_text(err)));
  }

  const FileSinkOptions options_;
  UniqueFd fd_;            // closed after a failed rotation; reopened by the next write
  std::int64_t size_ = 0;  // bytes in the file
  bool torn_ = false;      // the file ends in a fragment of a failed batch
};

// ---------------------------------------------------------------------------------------------------------------
// Syslog sink

enum class Transport { udp, tcp, tls };

struct Endpoint {
  Transport transport = Transport::tcp;
  std::string scheme;
  std::string host;  // without brackets
  std::string port;  // 1-65535, digits only
  std::string display() const {
    return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
  }
};

// udp|tcp|tls://host:port, IPv6 hosts in brackets; nothing after the port.
Result<Endpoint> parse_syslog_url(std::string_view url) {
  Endpoint endpoint;
  const auto separator = url.find("://");
  if (separator == std::string_view::npos) {
    return fail(Errc::invalid_argument, "syslog URL must be udp://, tcp:// or tls://host:port");
  }
  endpoint.scheme = std::string(url.substr(0, separator));
  if (endpoint.scheme == "udp") {
    endpoint.transport = Transport::udp;
  } else if (endpoint.scheme == "tcp") {
    endpoint.transport = Transport::tcp;
  } else if (endpoint.scheme == "tls") {
    endpoint.transport = Transport::tls;
  } else {
    return fail(Errc::invalid_argument, "syslog URL must be udp://, tcp:// or tls://host:port");
  }
  const std::string_view authority = url.substr(separator + 3);
  if (authority.find_first_of("/?#@") != std::string_view::npos) {
    return fail(Errc::invalid_argument, "syslog URL: only host:port may follow the scheme");
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail(Errc::invalid_argument, "syslog URL: unterminated IPv6 address");
    endpoint.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.starts_with(':')) return fail(Errc::invalid_argument, "syslog URL: missing port");
    port = after.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    if (colon == std::string_view::npos) return fail(Errc::invalid_argument, "syslog URL: missing port");
    endpoint.host = std::string(authority.substr(0, colon));
    if (endpoint.host.find(':') != std::string::npos) {
      return fail(Errc::invalid_argument, "syslog URL: IPv6 addresses go in brackets");
    }
    port = authority.substr(colon + 1);
  }
  if (endpoint.host.empty()) return fail(Errc::invalid_argument, "syslog URL: missing host");
  int number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || number < 1 || number > 65535 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail(Errc::invalid_argument, "syslog URL: port must be 1-65535");
  }
  endpoint.port = std::to_string(number);
  return endpoint;
}

bool printable_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return c >= 33 && c <= 126; });
}

// An RFC 3339 time as RFC 5424 wants it (upper-case T and Z, at most 6 fraction digits), or nullopt.
std::optional<std::string> syslog_timestamp(std::string_view text) {
  const auto digits = [&](std::size_t pos, std::size_t count) {
    if (pos + count > text.size()) return false;
    return std::all_of(text.begin() + pos, text.begin() + pos + count, [](char c) { return c >= '0' && c <= '9'; });
  };
  if (text.size() < 20 || !digits(0, 4) || text[4] != '-' || !digits(5, 2) || text[7] != '-' || !digits(8, 2) ||
      (text[10] != 'T' && text[10] != 't') || !digits(11, 2) || text[13] != ':' || !digits(14, 2) || text[16] != ':' ||
      !digits(17, 2)) {
    return std::nullopt;
  }
  std::string out(text.substr(0, 19));
  out[10] = 'T';
  std::size_t pos = 19;
  if (text[pos] == '.') {
    std::size_t count = 0;
    while (digits(pos + 1 + count, 1)) ++count;
    if (count == 0) return std::nullopt;
    out += text.substr(pos, 1 + std::min<std::size_t>(count, 6));
    pos += 1 + count;
  }
  const std::string_view zone = text.substr(pos);
  if (zone == "Z" || zone == "z") {
    out += 'Z';
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(pos + 1, 2) && zone[3] == ':' &&
             digits(pos + 4, 2)) {
    out += zone;
  } else {
    return std::nullopt;
  }
  return out;
}

// The entry's time for the syslog header: its "timestamp" member, or "-".
std::string entry_timestamp(std::string_view line) {
  const auto entry = nlohmann::json::parse(line, nullptr, false);
  if (!entry.is_object()) return "-";
  const auto it = entry.find("timestamp");
  if (it == entry.end() || !it->is_string()) return "-";
  return syslog_timestamp(it->get_ref<const std::string&>()).value_or("-");
}

timeval to_timeval(std::chrono::milliseconds ms) {
  ms = std::max(ms, std::chrono::milliseconds(1));
  return timeval{static_cast<time_t>(ms.count() / 1000), static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// The oldest queued OpenSSL error (the queue is cleared), or `fallback`.
std::string openssl_error(std::string_view fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(fallback);
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof buffer);
  return buffer;
}

// Why an SSL_* call returning `rc` failed.
std::string ssl_failure(SSL* ssl, int rc, int saved_errno) {
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return "timed out";
    case SSL_ERROR_ZERO_RETURN: return "connection closed by the server";
    case SSL_ERROR_SYSCALL:
      if (const unsigned long code = ERR_peek_error(); code != 0) return openssl_error("");
      return saved_errno != 0 ? errno_text(saved_errno) : "connection closed by the server";
    default: return openssl_error("TLS error");
  }
}

class SyslogSink final : public Sink {
 public:
  SyslogSink(Endpoint endpoint, const SyslogSinkOptions& options, std::string hostname)
      : endpoint_(std::move(endpoint)),
        ca_file_(options.ca_file),
        app_name_(options.app_name),
        hostname_(std::move(hostname)),
        timeout_(options.timeout) {}

  ~SyslogSink() override {
    if (ssl_) {
      const SigpipeGuard guard;
      ERR_clear_error();
      SSL_shutdown(ssl_.get());  // close_notify; the answer is not awaited
      ERR_clear_error();
    }
  }

  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;

  std::string_view name() const override { return "syslog"; }

  Result<void> write(std::span<const std::string> lines) override {
    if (lines.empty()) return {};
    const int pid = static_cast<int>(::getpid());
    if (endpoint_.transport == Transport::udp) {
      if (!fd_) {
        if (auto connected = connect(); !connected) return connected;
      }
      for (const auto& line : lines) {
        const std::string message = format_syslog(entry_timestamp(line), hostname_, app_name_, pid, line);
        while (::send(fd_.get(), message.data(), message.size(), MSG_NOSIGNAL) < 0) {
          const int err = errno;
          if (err == EINTR) continue;
          return broken(fmt::format("send to {}", endpoint_.display()), errno_text(err));
        }
      }
      return {};
    }

    std::string payload;
    for (const auto& line : lines) {
      const std::string message = format_syslog(entry_timestamp(line), hostname_, app_name_, pid, line);
      payload += std::to_string(message.size());
      payload += ' ';
      payload += message;
    }
    std::optional<SigpipeGuard> guard;
    if (endpoint_.transport == Transport::tls) guard.emplace();
    if (fd_ && !peer_open()) disconnect();
    if (!fd_) {
      if (auto connected = connect(); !connected) return connected;
    }
    return endpoint_.transport == Transport::tls ? send_tls(payload) : send_tcp(payload);
  }

 private:
  // False when the peer has closed the connection (or it failed): a receiver that stopped is noticed here rather
  // than by writing a batch into a dead connection. Whatever the peer sent meanwhile (syslog receivers send
  // nothing; a TLS server sends session tickets) is read and discarded, so the end of the stream behind it shows.
  bool peer_open() {
    pollfd p{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, 0);
    if (ready == 0) return true;
    if (ready < 0 || (p.revents & (POLLERR | POLLNVAL)) != 0) return false;
    char byte = 0;
    const ssize_t n = ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    return endpoint_.transport == Transport::tls ? drain_tls() : drain_tcp();
  }

  bool drain_tcp() {
    char buffer[4096];
    for (int i = 0; i < 64; ++i) {
      const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0) return false;
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
      }
    }
    return true;  // a peer that keeps talking is at least still there
  }

  bool drain_tls() {
    const int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0) return false;
    bool open = true;
    char buffer[4096];
    for (int i = 0; i < 64; ++i) {
      ERR_clear_error();
      std::size_t n = 0;
      const int rc = SSL_read_ex(ssl_.get(), buffer, sizeof buffer, &n);
      if (rc == 1) continue;
      const int error = SSL_get_error(ssl_.get(), rc);
      open = error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE;
      break;
    }
    ERR_clear_error();
    if (::fcntl(fd_.get(), F_SETFL, flags) != 0) return false;
    return open;
  }

  Result<void> connect() {
    const Deadline deadline = std::chrono::steady_clock::now() + timeout_;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = endpoint_.transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(endpoint_.host.c_str(), endpoint_.port.c_str(), &hints, &found); rc != 0) {
      return fail(Errc::unavailable, fmt::format("syslog {}: cannot resolve {}: {}", endpoint_.scheme, endpoint_.host,
                                                 rc == EAI_SYSTEM ? errno_text(errno) : ::gai_strerror(rc)));
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
    std::string reason = "no address";
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
      auto fd = connect_one(*a, deadline, reason);
      if (!fd) continue;
      fd_ = std::move(*fd);
      if (endpoint_.transport != Transport::tls) return {};
      return handshake();
    }
    return fail(Errc::unavailable,
                fmt::format("syslog {}: connect to {}: {}", endpoint_.scheme, endpoint_.display(), reason));
  }

  // A connected blocking socket with send and receive timeouts, or nullopt with `reason` set.
  std::optional<UniqueFd> connect_one(const addrinfo& address, Deadline deadline, std::string& reason) const {
    UniqueFd fd(::socket(address.ai_family, address.ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, address.ai_protocol));
    if (!fd) {
      reason = errno_text(errno);
      return std::nullopt;
    }
    if (::connect(fd.get(), address.ai_addr, address.ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        reason = errno_text(errno);
        return std::nullopt;
      }
      for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          reason = "timed out";
          return std::nullopt;
        }
        pollfd p{fd.get(), POLLOUT, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1 << 30)));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) {
          reason = errno_text(errno);
          return std::nullopt;
        }
        if (ready > 0) break;
      }
      int error = 0;
      socklen_t length = sizeof error;
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
      if (error != 0) {
        reason = errno_text(error);
        return std::nullopt;
      }
    }
    const int flags = ::fcntl(fd.get(), F_GETFL);
    const timeval tv = to_timeval(timeout_);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0 ||
        ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
      reason = errno_text(errno);
      return std::nullopt;
    }
    return fd;
  }

  // TLS 1.2+ over the connected fd_, verifying the chain and the host name (or IP address).
  Result<void> handshake() {
    ERR_clear_error();
    const SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) return broken("TLS setup", openssl_error("SSL_CTX_new failed"));
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
      return broken("TLS setup", openssl_error("cannot require TLS 1.2"));
    }
    if (ca_file_.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        return broken("TLS setup", openssl_error("cannot load the system CA certificates"));
      }
    } else if (SSL_CTX_load_verify_locations(ctx.get(), ca_file_.c_str(), nullptr) != 1) {
      return broken(fmt::format("TLS CA file {}", ca_file_), openssl_error("cannot load"));
    }
    SslPtr ssl(SSL_new(ctx.get()));  // holds its own reference to ctx
    if (!ssl || SSL_set_fd(ssl.get(), fd_.get()) != 1) return broken("TLS setup", openssl_error("SSL_new failed"));
    in6_addr address{};
    const bool ip = ::inet_pton(AF_INET, endpoint_.host.c_str(), &address) == 1 ||
                    ::inet_pton(AF_INET6, endpoint_.host.c_str(), &address) == 1;
    if (ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), endpoint_.host.c_str()) != 1) {
        return broken("TLS setup", openssl_error("cannot set the expected IP address"));
      }
    } else if (SSL_set_tlsext_host_name(ssl.get(), endpoint_.host.c_str()) != 1 ||
               SSL_set1_host(ssl.get(), endpoint_.host.c_str()) != 1) {
      return broken("TLS setup", openssl_error("cannot set the expected host name"));
    }
    errno = 0;
    const int rc = SSL_connect(ssl.get());
    if (rc != 1) {
      const int saved_errno = errno;
      const long verify = SSL_get_verify_result(ssl.get());
      std::string reason = verify != X509_V_OK ? fmt::format("certificate verification failed: {}",
                                                             X509_verify_cert_error_string(verify))
                                               : ssl_failure(ssl.get(), rc, saved_errno);
      ERR_clear_error();
      return broken(fmt::format("TLS handshake with {}", endpoint_.display()), reason);
    }
    ssl_ = std::move(ssl);
    return {};
  }

  Result<void> send_tcp(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        return broken(fmt::format("send to {}", endpoint_.display()),
                      err == EAGAIN || err == EWOULDBLOCK ? "timed out" : errno_text(err));
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

  Result<void> send_tls(std::string_view data) {
    while (!data.empty()) {
      ERR_clear_error();
      errno = 0;
      std::size_t written = 0;
      const int rc = SSL_write_ex(ssl_.get(), data.data(), data.size(), &written);
      if (rc != 1) {
        const int saved_errno = errno;
        return broken(fmt::format("send to {}", endpoint_.display()), ssl_failure(ssl_.get(), rc, saved_errno));
      }
      data.remove_prefix(written);
    }
    return {};
  }

  // Drops the connection without a TLS close_notify (it may be broken or out of step).
  void disconnect() {
    ssl_.reset();
    fd_.reset();
  }

  std::unexpected<Error> broken(std::string_view what, std::string_view reason) {
    disconnect();
    return fail(Errc::unavailable, fmt::format("syslog {}: {}: {}", endpoint_.scheme, what, reason));
  }

  const Endpoint endpoint_;
  const std::string ca_file_;
  const std::string app_name_;
  const std::string hostname_;
  const std::chrono::milliseconds timeout_;
  UniqueFd fd_;  // declared before ssl_, so the SSL object goes first
  SslPtr ssl_;   // tls only
};

// RFC 5424 header field: "-" when empty, cut to `max` characters, non-printable bytes replaced.
std::string header_field(std::string_view value, std::size_t max) {
  if (value.empty()) return "-";
  std::string out(value.substr(0, max));
  for (char& c : out) {
    if (c < 33 || c > 126) c = '_';
  }
  return out;
}

}  // namespace

std::string format_syslog(std::string_view timestamp, std::string_view hostname, std::string_view app_name, int pid,
                          std::string_view msg) {
  return fmt::format("<110>1 {} {} {} {} audit - {}", header_field(timestamp, std::string_view::npos),
                     header_field(hostname, 255), header_field(app_name, 48), pid, msg);
}

Result<std::unique_ptr<Sink>> make_file_sink(const FileSinkOptions& options) {
  if (options.path.empty()) return fail(Errc::invalid_argument, "audit file sink: the path is empty");
  if (options.max_bytes < 1) {
    return fail(Errc::invalid_argument, fmt::format("audit file {}: max_bytes must be positive", options.path));
  }
  if (options.max_files < 1) {
    return fail(Errc::invalid_argument, fmt::format("audit file {}: max_files must be at least 1", options.path));
  }
  const std::filesystem::path parent = std::filesystem::path(options.path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return fail(Errc::unavailable,
                  fmt::format("audit file {}: cannot create {}: {}", options.path, parent.string(), ec.message()));
    }
  }
  auto sink = std::make_unique<FileSink>(options);
  if (auto opened = sink->open(); !opened) return std::unexpected(opened.error());
  return sink;
}

Result<std::unique_ptr<Sink>> make_syslog_sink(const SyslogSinkOptions& options) {
  auto endpoint = parse_syslog_url(options.url);
  if (!endpoint) return std::unexpected(endpoint.error());
  if (options.timeout.count() <= 0) return fail(Errc::invalid_argument, "syslog timeout must be positive");
  if (options.app_name.empty() || options.app_name.size() > 48 || !printable_ascii(options.app_name)) {
    return fail(Errc::invalid_argument, "syslog app_name must be 1-48 printable ASCII characters without spaces");
  }
  std::string hostname = options.hostname;
  if (hostname.empty()) {
    char buffer[256] = {};
    if (::gethostname(buffer, sizeof buffer - 1) == 0) hostname = buffer;
  } else if (hostname.size() > 255 || !printable_ascii(hostname)) {
    return fail(Errc::invalid_argument, "syslog hostname must be 1-255 printable ASCII characters without spaces");
  }
  return std::make_unique<SyslogSink>(std::move(*endpoint), options, std::move(hostname));
}

}  // namespace atrium::audit
