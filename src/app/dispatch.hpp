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

}  // namespace app
}  // namespace atrium
