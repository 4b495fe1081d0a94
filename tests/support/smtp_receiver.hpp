#pragma once

// A real SMTP server for tests (RFC 5321 subset) on 127.0.0.1: plain POSIX sockets, one thread accepting and one
// per connection. Understands EHLO/HELO, AUTH PLAIN (when credentials are required), MAIL FROM, RCPT TO, DATA
// (dot-unstuffed, ends at CRLF.CRLF), RSET, NOOP and QUIT, and records every accepted message. Can be told to reject
// recipients with 550 (permanent) or to greet with 421 (transient), and stopped and started again on the same port.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace atrium::test::smtp {

// One message as the server received it.
struct Received {
  std::string helo;                     // the EHLO/HELO argument
  std::string mail_from;                // the reverse-path, without the angle brackets
  std::vector<std::string> recipients;  // forward-paths, without the angle brackets, in order
  std::string data;  // the message after DATA, dot-unstuffed, up to and including the CRLF before the final "."
};

enum class Mode {
  accept,             // accept everything
  reject_recipients,  // answer every RCPT TO with 550 5.1.1
  transient,          // greet with 421 4.3.2 and close the connection
};

// Standard base64 (RFC 4648); characters outside the alphabet (line breaks) are skipped, decoding stops at '='.
inline std::string decode_base64(std::string_view in) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : in) {
    int v = -1;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    if (c >= '0' && c <= '9') v = c - '0' + 52;
    if (c == '+') v = 62;
    if (c == '/') v = 63;
    if (c == '=') break;
    if (v < 0) continue;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

class Receiver {
 public:
  // Starts listening on an ephemeral port (or `port`); check listening().
  explicit Receiver(std::uint16_t port = 0) : port_(port) { start(); }
  ~Receiver() { stop(); }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // Listens again (on the port it had, once it had one). True when listening.
  bool start() {
    if (listening()) return true;
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
      return false;
    }
    socklen_t length = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
    stop_ = false;
    acceptor_ = std::thread([this] { accept_loop(); });
    return true;
  }

  // Stops listening and ends every connection (a message not yet completed is dropped). start() resumes.
  void stop() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> sessions;
    {
      std::lock_guard lock(mutex_);
      sessions.swap(sessions_);
    }
    for (auto& t : sessions) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
  }

  bool listening() const { return listen_fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

  void set_mode(Mode mode) { mode_ = mode; }
  // Advertises AUTH PLAIN and refuses MAIL (530) until the client authenticated with these credentials.
  void require_auth(std::string username, std::string password) {
    std::lock_guard lock(mutex_);
    credentials_ = std::make_pair(std::move(username), std::move(password));
  }

  // The messages received so far, once at least `count` have arrived or `timeout` passed.
  std::vector<Received> wait_for(std::size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return received_.size() >= count; });
    return received_;
  }
  std::vector<Received> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }
  // Every command line received, in order, across connections.
  std::vector<std::string> commands() {
    std::lock_guard lock(mutex_);
    return commands_;
  }

 private:
  struct Session {
    int fd = -1;
    std::string buffer;
    std::string helo;
    std::optional<std::string> mail_from;
    std::vector<std::string> recipients;
    bool authenticated = false;
  };

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      std::lock_guard lock(mutex_);
      sessions_.emplace_back([this, fd] {
        Session s;
        s.fd = fd;
        serve(s);
        ::close(fd);
      });
    }
  }

  static bool send_all(int fd, std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Reads more into s.buffer. False at end of stream, on error, after 10 s of silence, or when stopping.
  bool read_more(Session& s) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!stop_ && std::chrono::steady_clock::now() < give_up) {
      pollfd p{s.fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char chunk[16384];
      const ssize_t n = ::recv(s.fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      s.buffer.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  }

  // The next line without its CRLF (a bare LF ends a line too).
  std::optional<std::string> read_line(Session& s) {
    for (;;) {
      const auto lf = s.buffer.find('\n');
      if (lf != std::string::npos) {
        std::string line = s.buffer.substr(0, lf);
        s.buffer.erase(0, lf + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (s.buffer.size() > 65536 || !read_more(s)) return std::nullopt;
    }
  }

  // The mail data up to CRLF.CRLF, dot-unstuffed.
  std::optional<std::string> read_data(Session& s) {
    for (;;) {
      std::size_t end = std::string::npos, consumed = 0;
      if (s.buffer.starts_with(".\r\n")) {
        end = 0;
        consumed = 3;
      } else if (const auto at = s.buffer.find("\r\n.\r\n"); at != std::string::npos) {
        end = at + 2;
        consumed = at + 5;
      }
      if (end != std::string::npos) {
        std::string data;
        data.reserve(end);
        for (std::size_t i = 0; i < end; ++i) {
          const bool line_start = i == 0 || (s.buffer[i - 1] == '\n' && i >= 2 && s.buffer[i - 2] == '\r');
          if (line_start && s.buffer[i] == '.') continue;
          data.push_back(s.buffer[i]);
        }
        s.buffer.erase(0, consumed);
        return data;
      }
      if (s.buffer.size() > 64 * 1024 * 1024 || !read_more(s)) return std::nullopt;
    }
  }

  static std::string upper(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    return out;
  }

  // "<path>" after "FROM:" / "TO:" (spaces allowed before '<'); nullopt when malformed.
  static std::optional<std::string> path_argument(std::string_view line, std::string_view prefix) {
    if (!upper(line.substr(0, prefix.size())).starts_with(prefix)) return std::nullopt;
    line.remove_prefix(prefix.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    const auto close = line.find('>');
    if (line.empty() || line.front() != '<' || close == std::string_view::npos) return std::nullopt;
    return std::string(line.substr(1, close - 1));
  }

  bool check_plain(std::string_view encoded) {
    const std::string decoded = decode_base64(encoded);  // authzid NUL authcid NUL password
    const auto first = decoded.find('\0');
    const auto second = first == std::string::npos ? std::string::npos : decoded.find('\0', first + 1);
    if (second == std::string::npos) return false;
    std::lock_guard lock(mutex_);
    return credentials_ && decoded.substr(first + 1, second - first - 1) == credentials_->first &&
           decoded.substr(second + 1) == credentials_->second;
  }

  void serve(Session& s) {
    if (mode_ == Mode::transient) {
      send_all(s.fd, "421 4.3.2 Service not available, try again later\r\n");
      return;
    }
    if (!send_all(s.fd, "220 localhost ESMTP atrium-test\r\n")) return;
    for (;;) {
      const auto line = read_line(s);
      if (!line) return;
      {
        std::lock_guard lock(mutex_);
        commands_.push_back(*line);
      }
      const std::string verb = upper(std::string_view(*line).substr(0, line->find(' ')));
      const std::string argument = line->find(' ') == std::string::npos ? "" : line->substr(line->find(' ') + 1);
      bool auth_required = false;
      {
        std::lock_guard lock(mutex_);
        auth_required = credentials_.has_value();
      }
      std::string reply;
      if (verb == "EHLO" || verb == "HELO") {
        s.helo = argument;
        s.mail_from.reset();
        s.recipients.clear();
        if (verb == "HELO") {
          reply = "250 localhost\r\n";
        } else {
          reply = "250-localhost\r\n250-8BITMIME\r\n";
          if (auth_required) reply += "250-AUTH PLAIN\r\n";
          reply += "250 SIZE 67108864\r\n";
        }
      } else if (verb == "AUTH") {
        const auto space = argument.find(' ');
        if (upper(argument.substr(0, space)) != "PLAIN") {
          reply = "504 5.5.4 Unrecognized authentication type\r\n";
        } else {
          std::string response;
          if (space != std::string::npos) {
            response = argument.substr(space + 1);
          } else {
            if (!send_all(s.fd, "334 \r\n")) return;
            const auto next = read_line(s);
            if (!next) return;
            response = *next;
          }
          s.authenticated = check_plain(response);
          reply = s.authenticated ? "235 2.7.0 Authentication successful\r\n"
                                  : "535 5.7.8 Authentication credentials invalid\r\n";
        }
      } else if (verb == "MAIL") {
        const auto from = path_argument(argument, "FROM:");
        if (s.helo.empty()) {
          reply = "503 5.5.1 Error: send HELO/EHLO first\r\n";
        } else if (auth_required && !s.authenticated) {
          reply = "530 5.7.0 Authentication required\r\n";
        } else if (!from) {
          reply = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n";
        } else {
          s.mail_from = *from;
          s.recipients.clear();
          reply = "250 2.1.0 Ok\r\n";
        }
      } else if (verb == "RCPT") {
        const auto to = path_argument(argument, "TO:");
        if (!s.mail_from) {
          reply = "503 5.5.1 Error: need MAIL command\r\n";
        } else if (!to) {
          reply = "501 5.5.4 Syntax: RCPT TO:<address>\r\n";
        } else if (mode_ == Mode::reject_recipients) {
          reply = "550 5.1.1 <" + *to + ">: Recipient address rejected: User unknown in local recipient table\r\n";
        } else {
          s.recipients.push_back(*to);
          reply = "250 2.1.5 Ok\r\n";
        }
      } else if (verb == "DATA") {
        if (s.recipients.empty()) {
          reply = "503 5.5.1 Error: no valid recipients\r\n";
        } else {
          if (!send_all(s.fd, "354 End data with <CR><LF>.<CR><LF>\r\n")) return;
          auto data = read_data(s);
          if (!data) return;
          std::size_t number = 0;
          {
            std::lock_guard lock(mutex_);
            received_.push_back(Received{s.helo, *s.mail_from, s.recipients, std::move(*data)});
            number = received_.size();
            changed_.notify_all();
          }
          s.mail_from.reset();
          s.recipients.clear();
          reply = "250 2.0.0 Ok: queued as " + std::to_string(number) + "\r\n";
        }
      } else if (verb == "RSET") {
        s.mail_from.reset();
        s.recipients.clear();
        reply = "250 2.0.0 Ok\r\n";
      } else if (verb == "NOOP") {
        reply = "250 2.0.0 Ok\r\n";
      } else if (verb == "QUIT") {
        send_all(s.fd, "221 2.0.0 Bye\r\n");
        return;
      } else {
        reply = "502 5.5.2 Error: command not recognized\r\n";
      }
      if (!send_all(s.fd, reply)) return;
    }
  }

  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<Mode> mode_{Mode::accept};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::thread> sessions_;                               // guarded by mutex_
  std::vector<Received> received_;                                  // guarded by mutex_
  std::vector<std::string> commands_;                               // guarded by mutex_
  std::optional<std::pair<std::string, std::string>> credentials_;  // guarded by mutex_
};

}  // namespace atrium::test::smtp
