#pragma once

// A private DNS server for tests: dnsmasq (Debian's dnsmasq-base, installed by scripts/setup.sh) on a free loopback
// port, answering fixed TXT records, NXDOMAIN for other names in its zone and REFUSED elsewhere.

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "domains/dns.hpp"

extern char** environ;

namespace atrium::test {

inline constexpr const char* k_dnsmasq = "/usr/sbin/dnsmasq";

class DnsServer {
 public:
  // Starts dnsmasq for `zone` ("customer.test") with `records` (name, value: one TXT record each; a name may
  // repeat). nullptr when dnsmasq is missing or does not answer within 10 s.
  static std::unique_ptr<DnsServer> start(const std::string& zone,
                                          const std::vector<std::pair<std::string, std::string>>& records,
                                          std::uint16_t port = 0) {
    if (access(k_dnsmasq, X_OK) != 0) return nullptr;
    if (port == 0) {
      // dnsmasq listens on UDP and TCP: a port free for both, tried again elsewhere if it is taken meanwhile.
      for (int attempt = 0; attempt < 5; ++attempt) {
        if (auto server = start(zone, records, free_port())) return server;
      }
      return nullptr;
    }
    std::vector<std::string> args = {k_dnsmasq,
                                     "--no-daemon",
                                     "--port=" + std::to_string(port),
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--conf-file=/dev/null",
                                     "--user=root",
                                     "--pid-file=",
                                     "--local=/" + zone + "/",
                                     "--log-facility=/dev/null"};
    for (const auto& [name, value] : records)
      args.push_back("--txt-record=" + name + "," + value);  // no shell: no quotes
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, k_dnsmasq, nullptr, nullptr, argv.data(), environ) != 0) return nullptr;
    auto server = std::unique_ptr<DnsServer>(new DnsServer(pid, port));
    // Ready when a name of its zone gets an answer (NXDOMAIN: no records, no error).
    auto resolver = domains::system_resolver(server->address());
    for (int i = 0; i < 100; ++i) {
      if (resolver && (*resolver)->txt("ready-probe." + zone)) return server;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {  // it exited (the port was taken): nothing to stop
        server->pid_ = -1;
        return nullptr;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return nullptr;
  }

  ~DnsServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  DnsServer(pid_t pid, std::uint16_t port) : pid_(pid), port_(port) {}

  // A loopback port no socket uses for TCP nor for UDP right now.
  static std::uint16_t free_port() {
    for (;;) {
      const int tcp = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a);
      socklen_t length = sizeof a;
      getsockname(tcp, reinterpret_cast<sockaddr*>(&a), &length);
      const int udp = socket(AF_INET, SOCK_DGRAM, 0);
      const bool both = bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      close(udp);
      close(tcp);
      if (both) return ntohs(a.sin_port);
    }
  }

  pid_t pid_;
  std::uint16_t port_;
};

}  // namespace atrium::test
