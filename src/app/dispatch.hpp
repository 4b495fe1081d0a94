#pragma once

#include <memory>

namespace atrium {
namespace api {
class Services;
}
namespace http {
class Dispatcher;
struct HttpMetrics;
}  // namespace http
namespace proxy {
class Gateway;
}
struct Config;

namespace app {

// What callers of make_dispatcher differ in: the server records HTTP metrics and writes the access log
// (log.access_log); tests and benchmarks calling it in-process need neither.
struct DispatchOptions {
  http::HttpMetrics* metrics = nullptr;
  bool access_log = false;
};

// The one request pipeline: the routes, then the middleware chain in the order every request meets it (request
// id, security headers, CORS, access log, HTTP metrics, API version, authentication and tenant resolution, rate
// limits, API call counting) and the JSON limits from the configuration. `atrium serve` runs it behind the HTTP
// server; tests and benchmarks call it in-process. Time is the platform's clock.
std::shared_ptr<const http::Dispatcher> make_dispatcher(api::Services& services, const DispatchOptions& options = {});

// The gateway to upstream services (docs/gateway.md) on `dispatcher`'s pipeline: the identity tokens it signs with
// the key set in force, its audit entries in the request's tenant chain (action proxy.request), its requests in
// `http_metrics`. Not loaded yet (Gateway::load).
std::shared_ptr<proxy::Gateway> make_gateway(api::Services& services, const Config& config,
                                             std::shared_ptr<const http::Dispatcher> dispatcher,
                                             http::HttpMetrics& http_metrics);

}  // namespace app
}  // namespace atrium
