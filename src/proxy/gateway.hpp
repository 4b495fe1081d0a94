#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "http/dispatcher.hpp"
#include "http/forwarding.hpp"
#include "observability/metrics.hpp"

namespace atrium::http {
struct HttpMetrics;
}
namespace atrium::identity {
struct AccessClaims;
}

namespace atrium::proxy {

// What the gateway borrows from the platform (app/ installs them).
struct Hooks {
  // The request pipeline around `terminal`: authentication, tenant, permission, rate limits, API call counting
  // (http::Dispatcher::guard).
  std::function<http::Response(http::Request&, const http::Next&)> guard;
  // Signs the upstream identity token (identity::JwtSigner of the key set in force). An error refuses the request.
  std::function<Result<std::string>(const identity::AccessClaims&)> sign;
  // Records one audit entry in the request's tenant chain, for routes marked `audit`.
  std::function<Result<void>(const http::Request&, const Json& changes)> audit;
  http::HttpMetrics* http_metrics = nullptr;  // http_requests_total and its histogram count proxied requests too
  bool access_log = false;
};

struct Options {
  std::string routes_file;             // proxy.routes_file
  std::string issuer;                  // the identity token's iss (identity.jwt_issuer)
  std::string token_audience;          // its aud (proxy.token_audience)
  std::chrono::seconds token_ttl{60};  // its lifetime (proxy.token_ttl_s)
  bool tls = false;                    // X-Forwarded-Proto
};

// The reverse proxy's policy (docs/gateway.md): the routes file, the edge's checks through the request pipeline,
// tenant-aware placement, balancing, active health checks, circuit breakers, the identity an upstream receives, and
// the proxy's metrics. The server (http/server.cpp) streams the bytes.
class Gateway final : public http::Forwarder {
 public:
  Gateway(Options options, Hooks hooks, const Clock& clock, metrics::Registry& registry);
  ~Gateway() override;  // stop()
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Reads the routes file. Errors: invalid_argument naming the file and the problem (the routes in force stay).
  Result<void> load();
  // load() when the file changed since the last read (size or modification time); a failure is logged.
  void reload_if_changed();
  // Starts the active health checks and the routes file's watcher (once a second); stop() ends both.
  void start();
  void stop();

  std::shared_ptr<const void> match(const http::RequestHead& head) const override;
  std::variant<http::Response, std::shared_ptr<http::Exchange>> admit(http::Request& request,
                                                                      std::shared_ptr<const void> route) override;

  // The identity headers an upstream receives; any copy a client sends is removed.
  static constexpr std::string_view k_identity_prefix = "X-Atrium-";

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::proxy
