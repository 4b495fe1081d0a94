#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/dispatcher.hpp"
#include "http/forwarding.hpp"

namespace atrium::http {

// A certificate chain and key (PEM) to present for one SNI host name. `owner` keeps the text alive and identifies
// it: while the same owner is returned for a host, the server reuses the TLS context it built from it.
struct SniCertificate {
  std::shared_ptr<const void> owner;
  std::string_view chain_pem;
  std::string_view key_pem;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  // 0: any free port (see Server::port())
  int io_threads = 1;
  int worker_threads = 8;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds drain_timeout{30'000};
  std::string tls_cert_file;  // both set: TLS 1.3 only
  std::string tls_key_file;
  // With TLS: the certificate for a host name a client names by SNI (custom domains), called during the handshake
  // on an I/O thread; nullopt (or unset) presents the default certificate above.
  std::function<std::optional<SniCertificate>(std::string_view host)> certificate_for;
  bool handle_signals = true;  // SIGTERM and SIGINT start the drain
  // Set: requests whose head it matches are forwarded to upstreams, streaming (http/forwarding.hpp).
  std::shared_ptr<Forwarder> forwarder;
};

// HTTP/1.1 server (Boost.Beast underneath, kept out of this header). Requests on one connection are answered
// one at a time in order, so pipelined requests are safe. Handlers marked Execution::worker run on a separate
// thread pool; everything else runs on the I/O threads.
class Server {
 public:
  // Binds and listens at once. Throws std::runtime_error (start-up only) when the address cannot be bound or
  // the TLS files cannot be loaded.
  Server(ServerOptions options, std::shared_ptr<const Dispatcher> dispatcher);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const;

  // Serves until shutdown() or, with handle_signals, SIGTERM/SIGINT. Then it stops accepting, closes idle
  // connections, lets in-flight requests finish for up to drain_timeout, and returns. Call once. Handlers still
  // running after the drain timeout are waited for by the destructor.
  void run();

  // Starts the drain. Thread-safe and idempotent; may be called before or during run().
  void shutdown();
  bool draining() const;

  // Called once, on an I/O thread, when the drain starts (before the listener closes). Set before run().
  void on_drain(std::function<void()> callback);

  struct Impl;  // defined in server.cpp only

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::http
