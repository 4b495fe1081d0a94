#pragma once

// An HTTP/1.1 receiver for tests: listens on 127.0.0.1 (or another IPv4 address, 0.0.0.0 included), records every
// request and answers with a status, body and headers that the test can change at any time. Plain POSIX sockets; one
// thread accepts, one thread per connection serves requests (Content-Length bodies, keep-alive and Connection: close,
// Expect: 100-continue). stop() closes everything; start() listens again on the same port, so a test can take a
// receiver down and bring it back.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace atrium::test {

struct ReceivedRequest {
  std::string method;
  std::string target;                          // as sent: "/hooks?x=1"
  std::string version;                         // "HTTP/1.1"
  std::map<std::string, std::string> headers;  // lower-cased names; repeated fields joined with ", "
  std::string body;

  // The value of a header (name in any case), "" when absent.
  std::string header(std::string_view name) const {
    std::string key(name);
    for (char& c : key) c = lower(c);
    const auto it = headers.find(key);
    return it == headers.end() ? std::string() : it->second;
  }

  static char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
};

class HttpReceiver {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // Listens on `address`:`port` (IPv4 in host byte order, 127.0.0.1 by default; 0: an ephemeral port); listening()
  // tells whether that worked. url() names 127.0.0.1 whatever the address.
  explicit HttpReceiver(std::uint16_t port = 0, std::uint32_t address = INADDR_LOOPBACK)
      : port_(port), address_(address) {
    start();
  }
  ~HttpReceiver() { stop(); }
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  // Listens (again) on port(); true when listening afterwards. A no-op while already listening.
  bool start() {
    std::lock_guard control(control_mutex_);
    if (running_) return true;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(address_);
    addr.sin_port = htons(port_.load());
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 64) != 0) {
      ::close(fd);
      return false;
    }
    socklen_t length = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
    {
      std::lock_guard lock(mutex_);
      running_ = true;
    }
    listen_fd_ = fd;
    acceptor_ = std::thread([this] { accept_loop(); });
    return true;
  }

  // Stops listening and closes every connection; requests still waiting for their answer (set_delay) get none.
  // The recorded requests are kept. Safe to call repeatedly.
  void stop() {
    std::lock_guard control(control_mutex_);
    {
      std::lock_guard lock(mutex_);
      if (!running_) return;
      running_ = false;
    }
    changed_.notify_all();
    if (acceptor_.joinable()) acceptor_.join();  // closes the listening socket
    std::vector<std::thread> handlers;
    {
      std::lock_guard lock(mutex_);
      handlers.swap(handlers_);
    }
    for (auto& t : handlers) t.join();  // each closes its connection
  }

  bool listening() const {
    std::lock_guard lock(mutex_);
    return running_;
  }
  std::uint16_t port() const { return port_.load(); }
  std::string url(std::string_view target = "/") const {
    return "http://127.0.0.1:" + std::to_string(port()) + std::string(target);
  }

  // The answer to the following requests.
  void set_status(int status) {
    std::lock_guard lock(mutex_);
    status_ = status;
  }
  void set_response(int status, std::string body, Headers headers = {}) {
    std::lock_guard lock(mutex_);
    status_ = status;
    response_body_ = std::move(body);
    response_headers_ = std::move(headers);
  }
  // How long to wait, after reading a request, before answering it.
  void set_delay(std::chrono::milliseconds delay) {
    std::lock_guard lock(mutex_);
    delay_ = delay;
  }

  std::vector<ReceivedRequest> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // True once at least `count` requests have been recorded; false when `timeout` passed first.
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
  }
  void clear() {
    std::lock_guard lock(mutex_);
    requests_.clear();
  }
  // Connections accepted since construction.
  int connections() const { return accepted_.load(); }

 private:
  static constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
  static constexpr std::size_t kMaxBodyBytes = 16 * 1024 * 1024;
  static constexpr int kPollMs = 10;

  bool running() const {
    std::lock_guard lock(mutex_);
    return running_;
  }

  void accept_loop() {
    while (running()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0 || (p.revents & POLLIN) == 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ++accepted_;
      std::lock_guard lock(mutex_);
      handlers_.emplace_back([this, fd] {
        serve(fd);
        ::close(fd);
      });
    }
    ::close(listen_fd_);
    listen_fd_ = -1;
  }

  // Appends what arrives to `buffer`; false when the peer closed, an error occurred or the receiver stopped.
  bool read_more(int fd, std::string& buffer) {
    for (;;) {
      if (!running()) return false;
      pollfd p{fd, POLLIN, 0};
      const int ready = ::poll(&p, 1, kPollMs);
      if (ready < 0 && errno != EINTR) return false;
      if (ready <= 0) continue;
      char chunk[16384];
      const ssize_t got = ::recv(fd, chunk, sizeof chunk, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(got));
      return true;
    }
  }

  static bool send_all(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t sent = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent < 0 && errno == EINTR) continue;
      if (sent <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(sent));
    }
    return true;
  }

  static std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return std::string(s);
  }

  // The request line and header fields (without the blank line); nullopt when malformed.
  static std::optional<ReceivedRequest> parse_head(std::string_view head) {
    ReceivedRequest request;
    auto line_end = head.find("\r\n");
    const std::string_view line = head.substr(0, line_end);
    const auto first = line.find(' ');
    const auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    if (second == std::string_view::npos || first == 0 || second == first + 1) return std::nullopt;
    request.method = line.substr(0, first);
    request.target = line.substr(first + 1, second - first - 1);
    request.version = line.substr(second + 1);
    if (request.version != "HTTP/1.1" && request.version != "HTTP/1.0") return std::nullopt;
    while (line_end != std::string_view::npos) {
      const auto start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string_view field =
          head.substr(start, line_end == std::string_view::npos ? head.npos : line_end - start);
      const auto colon = field.find(':');
      if (colon == std::string_view::npos || colon == 0) return std::nullopt;
      std::string name(field.substr(0, colon));
      for (char& c : name) {
        if (c == ' ' || c == '\t') return std::nullopt;
        c = ReceivedRequest::lower(c);
      }
      const std::string value = trim(field.substr(colon + 1));
      auto [it, inserted] = request.headers.emplace(name, value);
      if (!inserted) it->second += ", " + value;
    }
    return request;
  }

  static std::string_view reason(int status) {
    switch (status) {
      case 200: return "OK";
      case 201: return "Created";
      case 202: return "Accepted";
      case 204: return "No Content";
      case 301: return "Moved Permanently";
      case 302: return "Found";
      case 307: return "Temporary Redirect";
      case 400: return "Bad Request";
      case 404: return "Not Found";
      case 410: return "Gone";
      case 429: return "Too Many Requests";
      case 500: return "Internal Server Error";
      case 501: return "Not Implemented";
      case 503: return "Service Unavailable";
      default: return "Status";
    }
  }

  static std::string response(int status, std::string_view body, const Headers& headers, bool close) {
    const bool bodiless = status == 204 || status == 304 || (status >= 100 && status < 200);
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) + "\r\n";
    for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
    if (!bodiless) out += "Content-Length: " + std::to_string(body.size()) + "\r\nContent-Type: text/plain\r\n";
    if (close) out += "Connection: close\r\n";
    out += "\r\n";
    if (!bodiless) out += body;
    return out;
  }

  // Serves requests on one connection until it closes, a request asks to close it, or the receiver stops.
  void serve(int fd) {
    std::string buffer;
    for (;;) {
      std::size_t head_end;
      while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
        if (buffer.size() > kMaxHeaderBytes || !read_more(fd, buffer)) return;
      }
      auto request = parse_head(std::string_view(buffer).substr(0, head_end));
      buffer.erase(0, head_end + 4);
      if (!request || request->headers.contains("transfer-encoding")) {
        send_all(fd, response(request ? 501 : 400, "unsupported request\n", {}, true));
        return;
      }
      std::size_t length = 0;
      if (const auto it = request->headers.find("content-length"); it != request->headers.end()) {
        if (it->second.empty() || it->second.size() > 9 ||
            it->second.find_first_not_of("0123456789") != std::string::npos) {
          send_all(fd, response(400, "bad content-length\n", {}, true));
          return;
        }
        length = std::stoul(it->second);
        if (length > kMaxBodyBytes) {
          send_all(fd, response(413, "too large\n", {}, true));
          return;
        }
      }
      std::string expect = request->header("expect");
      for (char& c : expect) c = ReceivedRequest::lower(c);
      if (expect == "100-continue" && buffer.size() < length) {
        if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
      }
      while (buffer.size() < length) {
        if (!read_more(fd, buffer)) return;
      }
      request->body = buffer.substr(0, length);
      buffer.erase(0, length);

      const std::string connection = request->header("connection");
      const bool close = request->version == "HTTP/1.0" ? connection.find("eep-alive") == std::string::npos
                                                        : connection.find("close") != std::string::npos;
      int status;
      std::string body;
      Headers headers;
      {
        std::unique_lock lock(mutex_);
        requests_.push_back(std::move(*request));
        changed_.notify_all();
        status = status_;
        body = response_body_;
        headers = response_headers_;
        if (delay_.count() > 0 && changed_.wait_for(lock, delay_, [&] { return !running_; })) return;
      }
      if (!send_all(fd, response(status, body, headers, close)) || close) return;
    }
  }

  std::mutex control_mutex_;  // serialises start() and stop()
  std::atomic<std::uint16_t> port_;
  const std::uint32_t address_;  // host byte order
  std::atomic<int> accepted_{0};
  int listen_fd_ = -1;  // owned by the acceptor thread while running
  std::thread acceptor_;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // a request was recorded, or the receiver stopped
  bool running_ = false;                     // guarded by mutex_
  std::vector<std::thread> handlers_;        // guarded by mutex_
  std::vector<ReceivedRequest> requests_;    // guarded by mutex_
  int status_ = 200;                         // guarded by mutex_
  std::string response_body_ = "ok\n";       // guarded by mutex_
  Headers response_headers_;                 // guarded by mutex_
  std::chrono::milliseconds delay_{0};       // guarded by mutex_
};

}  // namespace atrium::test
