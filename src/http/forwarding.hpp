#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "http/message.hpp"

namespace atrium::http {

// The server's half of a reverse proxy (proxy/ holds the policy; docs/gateway.md). A request whose head matches a
// forwarding route is not read whole: the edge's checks run on a worker, then the server streams the body to an
// upstream endpoint and the answer back as it arrives, and passes an upgraded connection (WebSocket) through.

struct Endpoint {
  std::string host;  // an address or a name to resolve
  std::uint16_t port = 0;
  std::string name;  // "host:port": the idle-connection pool's key and the metrics' label
};

// How one attempt to reach an upstream ended.
enum class AttemptResult { answered, connect_failed, reset, timeout, server_error };

// What the forwarding policy wants from the server for one request head: cheap, no I/O (called on an I/O thread).
struct RequestHead {
  Method method = Method::get;
  std::string_view path;
  std::string_view host;     // Host, without the port
  std::string_view version;  // Atrium-Version as sent ("" when absent)
};

// One admitted request: where it may go and what it carries. pick() and attempt_done() run on the connection's
// strand; so does finish(), unless finish_blocks (then on a worker thread).
class Exchange {
 public:
  virtual ~Exchange() = default;

  std::string target;        // path and query sent upstream
  Headers headers;           // request fields sent upstream; the server removes hop-by-hop fields and sets framing
  Headers response_headers;  // fields added to the answer
  std::vector<std::string> response_remove;  // fields removed from the upstream's answer
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds read_timeout{15000};  // to the answer's head, and between reads of either body
  std::chrono::milliseconds tunnel_idle_timeout{300000};
  int max_attempts = 1;        // connection attempts (a request not yet sent may try another endpoint)
  bool may_resend = false;     // idempotent or with an Idempotency-Key, and bodiless: may be sent again after a failure
  bool resend_on_5xx = false;  // with may_resend: a 502, 503 or 504 from the upstream is tried elsewhere too
  bool finish_blocks = false;  // finish() does blocking work (the audit log): it runs on a worker
  // Body transforms (a gateway route's version changes): when set, a JSON body of that direction (Content-Type
  // naming json) is read whole instead of streamed — at most max_transform_bytes, else 413 (request) or 502
  // (answer) — and sent rewritten with its new length; nullopt from the function sends it unchanged.
  std::function<std::optional<std::string>(std::string_view)> transform_request;
  std::function<std::optional<std::string>(std::string_view)> transform_response;
  std::uint64_t max_transform_bytes = 8 * 1024 * 1024;

  // The endpoint for attempt `attempt` (0 first), or nullopt when none is available.
  virtual std::optional<Endpoint> pick(int attempt) = 0;
  // The outcome of one attempt: passive health and circuit breakers.
  virtual void attempt_done(const Endpoint& endpoint, AttemptResult result) = 0;
  // The problem answer when no upstream answered: 502 (unreachable or reset), 503 (none available), 504 (timed out).
  virtual Response failure(int status, std::string_view detail) = 0;
  // The problem answer standing in for an upstream's error (4xx or 5xx) that came without a body.
  virtual Response bodiless_error(int status) = 0;

  struct Summary {
    int status = 0;  // as sent to the client; 0 when the client went away first
    std::uint64_t request_bytes = 0;
    std::uint64_t response_bytes = 0;
    std::chrono::nanoseconds duration{};
    std::string endpoint;  // the last one tried ("" when none)
    int attempts = 0;
    bool upstream_answered = false;
  };
  virtual void finish(const Summary& summary) = 0;
};

class Forwarder {
 public:
  virtual ~Forwarder() = default;
  // The forwarding route a request head matches, or null: the request goes to the dispatcher as usual.
  virtual std::shared_ptr<const void> match(const RequestHead& head) const = 0;
  // On a worker: the edge's checks for a matched request (`request` has no body yet). A Response refuses it (its
  // body is not read); an Exchange admits it.
  virtual std::variant<Response, std::shared_ptr<Exchange>> admit(Request& request,
                                                                  std::shared_ptr<const void> route) = 0;

  std::size_t max_idle_per_endpoint = 64;               // idle upstream connections kept per endpoint
  std::chrono::milliseconds pool_idle_timeout{30'000};  // an idle upstream connection older than this is closed
};

}  // namespace atrium::http
