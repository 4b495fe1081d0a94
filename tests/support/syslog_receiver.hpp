#pragma once

// A syslog receiver for tests: RFC 6587 octet-counted frames over TCP (or TLS) on 127.0.0.1.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace atrium::test {

inline void set_timeouts(int fd, std::chrono::milliseconds timeout) {
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

inline std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t length = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  return ntohs(addr.sin_port);
}

// A syslog receiver on 127.0.0.1 (RFC 6587 octet counting, over TLS when given a server context). A thread accepts
// connections and parses frames until stop(), which closes every connection and the listening socket.
class Receiver {
 public:
  explicit Receiver(std::uint16_t port = 0, SSL_CTX* tls = nullptr) : tls_(tls) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const sockaddr_in addr = loopback(port);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
      return;
    }
    port_ = local_port(listen_fd_);
    thread_ = std::thread([this] { run(); });
  }
  ~Receiver() { stop(); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  bool listening() const { return port_ != 0; }
  std::uint16_t port() const { return port_; }
  int connections() const { return accepted_.load(); }

  // The messages received so far, once at least `count` have arrived (or the wait gave up).
  std::vector<std::string> wait_for(std::size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return messages_.size() >= count; });
    return messages_;
  }

  // Closes the open connections and goes on listening.
  void drop_connections() {
    std::unique_lock lock(mutex_);
    drop_ = true;
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return !drop_; });
  }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Connection {
    int fd = -1;
    SSL* ssl = nullptr;
    std::string buffer;
  };

  // Sends FIN (no TLS close_notify: the peer just sees the stream end) and waits until the peer's kernel has
  // acknowledged it, so the client can see the close as soon as this returns, however busy the host.
  static void close_connection(Connection& c) {
    ::shutdown(c.fd, SHUT_WR);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      tcp_info info{};
      socklen_t length = sizeof info;
      if (::getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 || info.tcpi_state != TCP_FIN_WAIT1) break;
      if (std::chrono::steady_clock::now() >= give_up) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (c.ssl != nullptr) SSL_free(c.ssl);
    ::close(c.fd);
  }

  void run() {
    // A client that hangs up mid-handshake must not kill the test with SIGPIPE.
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
    std::vector<Connection> connections;
    while (!stop_) {
      {
        std::lock_guard lock(mutex_);
        if (drop_) {
          for (auto& c : connections) close_connection(c);
          connections.clear();
          drop_ = false;
          changed_.notify_all();
        }
      }
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const auto& c : connections) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (std::size_t i = connections.size(); i-- > 0;) {
        if (fds[i + 1].revents != 0 && !read_from(connections[i])) {
          close_connection(connections[i]);
          connections.erase(connections.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
      if ((fds[0].revents & POLLIN) != 0) accept_one(connections);
    }
    for (auto& c : connections) close_connection(c);
    ::close(listen_fd_);
  }

  void accept_one(std::vector<Connection>& connections) {
    Connection c;
    c.fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.fd < 0) return;
    set_timeouts(c.fd, std::chrono::seconds(5));
    if (tls_ != nullptr) {
      c.ssl = SSL_new(tls_);
      SSL_set_fd(c.ssl, c.fd);
      if (SSL_accept(c.ssl) != 1) {
        ERR_clear_error();
        close_connection(c);
        return;
      }
    }
    ++accepted_;
    connections.push_back(std::move(c));
  }

  // False when the connection ended.
  bool read_from(Connection& c) {
    char buffer[16384];
    do {
      std::size_t n = 0;
      if (c.ssl != nullptr) {
        if (SSL_read_ex(c.ssl, buffer, sizeof buffer, &n) != 1) {
          ERR_clear_error();
          return false;
        }
      } else {
        const ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (got <= 0) return false;
        n = static_cast<std::size_t>(got);
      }
      c.buffer.append(buffer, n);
    } while (c.ssl != nullptr && SSL_pending(c.ssl) > 0);
    parse_frames(c.buffer);
    return true;
  }

  // "LEN SP MSG" frames; a malformed one is recorded as "<bad frame>" so the test sees it.
  void parse_frames(std::string& buffer) {
    std::lock_guard lock(mutex_);
    for (;;) {
      const auto space = buffer.find(' ');
      if (space == std::string::npos) break;
      std::size_t length = 0;
      for (std::size_t i = 0; i < space; ++i) {
        if (buffer[i] < '0' || buffer[i] > '9') {
          messages_.push_back("<bad frame>");
          buffer.clear();
          changed_.notify_all();
          return;
        }
        length = length * 10 + static_cast<std::size_t>(buffer[i] - '0');
      }
      if (buffer.size() < space + 1 + length) break;
      messages_.push_back(buffer.substr(space + 1, length));
      buffer.erase(0, space + 1 + length);
    }
    changed_.notify_all();
  }

  SSL_CTX* tls_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> messages_;  // guarded by mutex_
  bool drop_ = false;                  // guarded by mutex_
  std::thread thread_;
};

}  // namespace atrium::test
