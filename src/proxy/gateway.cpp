#include "proxy/gateway.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "gateway/versioning.hpp"
#include "http/middleware.hpp"
#include "http/problem.hpp"
#include "identity/jwt.hpp"
#include "identity/principal.hpp"
#include "proxy/table.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::proxy {

namespace {

using steady = std::chrono::steady_clock;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

}  // namespace

// One endpoint's health, kept across reloads while its cluster lists it. Atomics: read on every pick.
struct EndpointState {
  http::Endpoint endpoint;
  std::string cluster;
  std::atomic<int> in_flight{0};
  std::atomic<int> consecutive_failures{0};
  std::atomic<std::int64_t> open_until{0};  // steady ns; 0: the circuit is closed
  std::atomic<int> open_count{0};           // openings in a row (the ejection doubles)
  std::atomic<bool> trial{false};           // half-open: a trial request is out
  std::atomic<bool> healthy{true};          // the active checks' verdict
  int check_streak = 0;                     // checks in a row against the verdict (checker thread only)
  steady::time_point next_check{};          // checker thread only
  metrics::Gauge* circuit_gauge = nullptr;
  metrics::Gauge* healthy_gauge = nullptr;
};

struct ClusterState {
  Cluster config;
  std::vector<std::shared_ptr<EndpointState>> endpoints;
  std::atomic<std::uint64_t> next{0};
  std::atomic<int> in_flight{0};
};

// The table in force with the runtime state of its clusters.
struct Routing {
  std::shared_ptr<const Table> table;
  std::unordered_map<std::string, std::shared_ptr<ClusterState>> clusters;
};

// What match() hands the server: the route and the routing it belongs to, kept alive together.
struct Matched {
  std::shared_ptr<const Routing> routing;
  const Route* route = nullptr;
};

struct Gateway::Impl {
  Impl(Options o, Hooks h, const Clock& c, metrics::Registry& r)
      : options(std::move(o)),
        hooks(std::move(h)),
        clock(c),
        requests(r.counter("proxy_requests_total", "Requests forwarded to upstreams, by route, cluster and status.",
                           {"route", "cluster", "status"})),
        duration(r.histogram("proxy_request_duration_seconds",
                             "Time from admission to the last byte of the answer of forwarded requests.",
                             {"route", "cluster"},
                             {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})),
        attempts(r.counter("proxy_upstream_attempts_total",
                           "Attempts to reach an upstream endpoint, by outcome: answered, connect_failed, reset, "
                           "timeout, server_error.",
                           {"cluster", "endpoint", "outcome"})),
        retries(
            r.counter("proxy_retries_total", "Attempts after the first, by route and cluster.", {"route", "cluster"})),
        refused(r.counter("proxy_refused_total",
                          "Forwarded requests answered by the gateway itself, by route and reason (no_endpoint, "
                          "overloaded, unreachable, timeout, identity).",
                          {"route", "reason"})),
        circuit_open(r.gauge("proxy_endpoint_circuit_open",
                             "1 while an endpoint's circuit breaker is open (ejected by passive health).",
                             {"cluster", "endpoint"})),
        endpoint_healthy(r.gauge("proxy_endpoint_healthy", "1 while an endpoint passes its active health checks.",
                                 {"cluster", "endpoint"})),
        reloads(r.counter("proxy_routes_reloads_total", "Reads of the routes file, by result.", {"result"})) {}

  Options options;
  Hooks hooks;
  const Clock& clock;
  metrics::Family<metrics::Counter>& requests;
  metrics::Family<metrics::Histogram>& duration;
  metrics::Family<metrics::Counter>& attempts;
  metrics::Family<metrics::Counter>& retries;
  metrics::Family<metrics::Counter>& refused;
  metrics::Family<metrics::Gauge>& circuit_open;
  metrics::Family<metrics::Gauge>& endpoint_healthy;
  metrics::Family<metrics::Counter>& reloads;

  mutable std::mutex mutex;
  std::shared_ptr<const Routing> routing;  // guarded by mutex (copied out)
  // The routes file's modification time and size when last read (guarded by mutex).
  std::optional<std::pair<std::int64_t, std::int64_t>> file_stamp;

  std::shared_ptr<const Routing> current() const {
    std::lock_guard lock(mutex);
    return routing;
  }

  // Identity tokens by caller: one signature per caller and half a lifetime, not one per request.
  struct CachedToken {
    std::string token;
    steady::time_point refresh_after;
  };
  std::mutex token_mutex;
  std::unordered_map<std::string, CachedToken> tokens;  // guarded by token_mutex

  std::function<void()> reload;  // Gateway::reload_if_changed, for the watcher
  std::mutex run_mutex;
  std::condition_variable run_cv;
  bool running = false;  // guarded by run_mutex
  std::thread checker;

  Result<void> install(std::shared_ptr<const Table> table);
  Result<std::string> identity_token(const identity::Principal& who, const std::string& tenant_id);
  void check_health();
  void loop();
};

namespace {

std::string_view outcome_name(http::AttemptResult r) {
  switch (r) {
    case http::AttemptResult::answered: return "answered";
    case http::AttemptResult::connect_failed: return "connect_failed";
    case http::AttemptResult::reset: return "reset";
    case http::AttemptResult::timeout: return "timeout";
    case http::AttemptResult::server_error: return "server_error";
  }
  return "answered";
}

bool listed(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// W3C Trace Context: the caller's trace continues with this hop as the parent; a request without a valid
// traceparent starts a trace.
std::string next_traceparent(std::optional<std::string_view> incoming) {
  thread_local std::mt19937_64 random{std::random_device{}()};
  const auto hex = [](std::uint64_t v, int digits) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out(static_cast<std::size_t>(digits), '0');
    for (int i = digits - 1; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = k_hex[v & 15];
    return out;
  };
  std::uint64_t span = 0;
  while (span == 0) span = random();
  const auto valid_hex = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  if (incoming && incoming->size() == 55 && (*incoming)[2] == '-' && (*incoming)[35] == '-' && (*incoming)[52] == '-') {
    const auto version = incoming->substr(0, 2);
    const auto trace = incoming->substr(3, 32);
    const auto flags = incoming->substr(53, 2);
    if (version == "00" && valid_hex(trace) && valid_hex(flags) && trace != std::string(32, '0')) {
      return "00-" + std::string(trace) + "-" + hex(span, 16) + "-" + std::string(flags);
    }
  }
  std::uint64_t high = 0;
  while (high == 0) high = random();
  return "00-" + hex(high, 16) + hex(random(), 16) + "-" + hex(span, 16) + "-01";
}

bool idempotent(http::Method m) {
  return m == http::Method::get || m == http::Method::head || m == http::Method::options || m == http::Method::put ||
         m == http::Method::delete_;
}

// One admitted request.
class ForwardedExchange final : public http::Exchange {
 public:
  ForwardedExchange(Gateway::Impl& gateway, std::shared_ptr<const Routing> routing, const Route& route,
                    std::shared_ptr<ClusterState> cluster, http::Request request)
      : gateway_(gateway),
        routing_(std::move(routing)),
        route_(route),
        cluster_(std::move(cluster)),
        request_(std::move(request)) {
    cluster_->in_flight.fetch_add(1);
  }
  ~ForwardedExchange() override {
    // An attempt whose outcome was never reported (the client left mid-way) still releases its endpoint.
    for (EndpointState* e : pending_) release(*e);
    cluster_->in_flight.fetch_sub(1);
  }

  std::optional<http::Endpoint> pick(int /*attempt*/) override {
    const auto& endpoints = cluster_->endpoints;
    const std::size_t n = endpoints.size();
    const std::uint64_t start = cluster_->next.fetch_add(1);
    const std::int64_t now = steady_ns();
    EndpointState* best = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
      EndpointState& e = *endpoints[(start + i) % n];
      if (std::find(tried_.begin(), tried_.end(), &e) != tried_.end()) continue;
      if (!e.healthy.load()) continue;
      const std::int64_t open_until = e.open_until.load();
      if (open_until != 0 && now < open_until) continue;  // ejected
      if (open_until != 0 && e.trial.load()) continue;    // half-open: one trial at a time
      if (cluster_->config.balance == Balance::round_robin) {
        best = &e;
        break;
      }
      if (best == nullptr || e.in_flight.load() < best->in_flight.load()) best = &e;
    }
    if (best == nullptr) return std::nullopt;
    if (best->open_until.load() != 0) {
      bool expected = false;
      if (!best->trial.compare_exchange_strong(expected, true)) return std::nullopt;
      trial_ = best;
    }
    tried_.push_back(best);
    pending_.push_back(best);
    best->in_flight.fetch_add(1);
    return best->endpoint;
  }

  void attempt_done(const http::Endpoint& endpoint, http::AttemptResult result) override {
    auto it = std::find_if(tried_.rbegin(), tried_.rend(),
                           [&](const EndpointState* e) { return e->endpoint.name == endpoint.name; });
    if (it == tried_.rend()) return;
    EndpointState& e = **it;
    if (auto p = std::find(pending_.begin(), pending_.end(), &e); p != pending_.end()) {
      pending_.erase(p);
      release(e);
    }
    gateway_.attempts.with({cluster_->config.name, endpoint.name, std::string(outcome_name(result))}).inc();
    const bool failed = result != http::AttemptResult::answered;
    const auto& breaker = cluster_->config.breaker;
    if (!failed) {
      e.consecutive_failures.store(0);
      if (e.open_until.load() != 0) {
        e.open_until.store(0);
        e.open_count.store(0);
        log::info("upstream endpoint recovered", {{"cluster", cluster_->config.name}, {"endpoint", endpoint.name}});
      }
      if (e.circuit_gauge != nullptr) e.circuit_gauge->set(0);
    } else if (e.consecutive_failures.fetch_add(1) + 1 >= breaker.consecutive_failures || e.open_until.load() != 0) {
      const int openings = std::min(e.open_count.fetch_add(1), 3);  // 1, 2, 4, 8 times `open`
      const auto open = breaker.open * (1 << openings);
      e.open_until.store(steady_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(open).count());
      if (e.circuit_gauge != nullptr) e.circuit_gauge->set(1);
      log::warn("upstream endpoint ejected", {{"cluster", cluster_->config.name},
                                              {"endpoint", endpoint.name},
                                              {"outcome", outcome_name(result)},
                                              {"for_ms", std::chrono::duration<double, std::milli>(open).count()}});
    }
  }

  http::Response failure(int status, std::string_view detail) override {
    const std::string_view slug = status == 504   ? "upstream-timeout"
                                  : status == 503 ? "unavailable"
                                  : status == 413 ? "body-too-large"
                                                  : "bad-gateway";
    const std::string_view title = status == 504   ? "Gateway Timeout"
                                   : status == 503 ? "Service Unavailable"
                                   : status == 413 ? "Content Too Large"
                                                   : "Bad Gateway";
    gateway_.refused
        .with({route_.name, status == 504   ? "timeout"
                            : status == 503 ? "no_endpoint"
                            : status == 413 ? "too_large"
                                            : "unreachable"})
        .inc();
    http::Response r = http::problem(status, slug, title, detail, request_);
    if (status == 503) r.headers.set("Retry-After", "1");
    for (const auto& [name, value] : response_headers.fields()) r.headers.set(name, value);
    return r;
  }

  http::Response bodiless_error(int status) override {
    http::Response r = http::problem(status, "upstream-error", http::reason_phrase(status),
                                     "The upstream answered " + std::to_string(status) + " without details.", request_);
    for (const auto& [name, value] : response_headers.fields()) r.headers.set(name, value);
    return r;
  }

  void finish(const Summary& s) override {
    const double seconds = std::chrono::duration<double>(s.duration).count();
    const std::string status = s.status == 0 ? "client_closed" : std::to_string(s.status);
    gateway_.requests.with({route_.name, cluster_->config.name, status}).inc();
    gateway_.duration.with({route_.name, cluster_->config.name}).observe(seconds);
    if (s.attempts > 1) gateway_.retries.with({route_.name, cluster_->config.name}).inc(s.attempts - 1);
    if (gateway_.hooks.http_metrics != nullptr && s.status != 0) {
      gateway_.hooks.http_metrics->record(request_, s.status, seconds);
    }
    if (gateway_.hooks.access_log && log::enabled(log::Level::info)) {
      log::info("request", {{"request_id", request_.request_id},
                            {"method", request_.method_text},
                            {"route", request_.route},
                            {"path", request_.path},
                            {"status", s.status},
                            {"duration_ms", seconds * 1000.0},
                            {"bytes", s.response_bytes},
                            {"request_bytes", s.request_bytes},
                            {"upstream_cluster", cluster_->config.name},
                            {"upstream_endpoint", s.endpoint},
                            {"upstream_attempts", s.attempts},
                            {"upstream_answered", s.upstream_answered},
                            {"remote", request_.remote_address}});
    }
    if (route_.audit && request_.tenant && gateway_.hooks.audit) {
      Json changes = {{"method", request_.method_text},
                      {"target", request_.target.substr(0, 2048)},
                      {"upstream", s.endpoint},
                      {"status", s.status}};
      if (auto r = gateway_.hooks.audit(request_, changes); !r) {
        log::error("a forwarded request's audit entry was not recorded",
                   {{"request_id", request_.request_id}, {"error", r.error().message}});
      }
    }
  }

 private:
  void release(EndpointState& e) {
    e.in_flight.fetch_sub(1);
    if (trial_ == &e) {
      e.trial.store(false);
      trial_ = nullptr;
    }
  }

  Gateway::Impl& gateway_;
  std::shared_ptr<const Routing> routing_;  // keeps route_ and the cluster's config alive across a reload
  const Route& route_;
  std::shared_ptr<ClusterState> cluster_;
  http::Request request_;
  std::vector<EndpointState*> tried_;
  std::vector<EndpointState*> pending_;  // picked, outcome not reported yet
  EndpointState* trial_ = nullptr;
};

}  // namespace

Result<void> Gateway::Impl::install(std::shared_ptr<const Table> table) {
  auto next = std::make_shared<Routing>();
  next->table = table;
  std::lock_guard lock(mutex);
  for (const auto& [name, cluster] : table->clusters) {
    auto state = std::make_shared<ClusterState>();
    state->config = cluster;
    std::shared_ptr<const ClusterState> previous;
    if (routing) {
      if (auto it = routing->clusters.find(name); it != routing->clusters.end()) previous = it->second;
    }
    for (const auto& endpoint : cluster.endpoints) {
      std::shared_ptr<EndpointState> e;
      if (previous) {
        for (const auto& p : previous->endpoints) {
          if (p->endpoint.name == endpoint.name) e = p;
        }
      }
      if (!e) {
        e = std::make_shared<EndpointState>();
        e->endpoint = endpoint;
        e->cluster = name;
        e->circuit_gauge = &circuit_open.with({name, endpoint.name});
        e->healthy_gauge = &endpoint_healthy.with({name, endpoint.name});
        e->circuit_gauge->set(0);
        e->healthy_gauge->set(1);
      }
      state->endpoints.push_back(std::move(e));
    }
    next->clusters.emplace(name, std::move(state));
  }
  routing = std::move(next);
  return {};
}

Gateway::Gateway(Options options, Hooks hooks, const Clock& clock, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(hooks), clock, registry)) {}

Gateway::~Gateway() { stop(); }

namespace {

// What tells a changed routes file: its modification time (ns) and size; nullopt when it cannot be read.
std::optional<std::pair<std::int64_t, std::int64_t>> file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::pair{static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   static_cast<std::int64_t>(st.st_size)};
}

}  // namespace

Result<void> Gateway::load() {
  {
    // Recorded before reading: a file that does not load is reported once, not at every check.
    std::lock_guard lock(impl_->mutex);
    impl_->file_stamp = file_stamp(impl_->options.routes_file);
  }
  auto table = load_table(impl_->options.routes_file);
  if (!table) {
    impl_->reloads.with({"error"}).inc();
    return std::unexpected(table.error());
  }
  impl_->install(std::move(*table));
  impl_->reloads.with({"ok"}).inc();
  return {};
}

void Gateway::reload_if_changed() {
  const auto stamp = file_stamp(impl_->options.routes_file);
  if (!stamp) return;
  {
    std::lock_guard lock(impl_->mutex);
    if (stamp == impl_->file_stamp) return;
  }
  if (auto r = load(); !r) {
    log::error("the gateway's routes file does not load; the routes in force stay", {{"error", r.error().message}});
  } else {
    log::info("gateway routes reloaded", {{"file", impl_->options.routes_file}});
  }
}

void Gateway::start() {
  std::lock_guard lock(impl_->run_mutex);
  if (impl_->running) return;
  impl_->running = true;
  impl_->reload = [this] { reload_if_changed(); };
  impl_->checker = std::thread([this] { impl_->loop(); });
}

void Gateway::stop() {
  {
    std::lock_guard lock(impl_->run_mutex);
    if (!impl_->running) return;
    impl_->running = false;
  }
  impl_->run_cv.notify_all();
  if (impl_->checker.joinable()) impl_->checker.join();
}

void Gateway::Impl::loop() {
  auto next_file_check = steady::now();
  std::unique_lock lock(run_mutex);
  while (running) {
    lock.unlock();
    check_health();
    if (steady::now() >= next_file_check) {
      next_file_check = steady::now() + std::chrono::seconds(1);
      if (reload) reload();
    }
    lock.lock();
    run_cv.wait_for(lock, std::chrono::milliseconds(100), [this] { return !running; });
  }
}

namespace {

size_t discard_body(char*, size_t size, size_t count, void*) { return size * count; }

// One active health check: GET <path> answered 2xx within the timeout.
bool probe(const http::Endpoint& endpoint, const HealthCheck& check) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  const std::string url =
      "http://" + (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port) + check.path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(check.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(check.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "atrium-health-check");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  return rc == CURLE_OK && status >= 200 && status < 300;
}

}  // namespace

void Gateway::Impl::check_health() {
  const auto routing_now = current();
  if (!routing_now) return;
  for (const auto& [name, cluster] : routing_now->clusters) {
    const auto& check = cluster->config.health;
    if (check.path.empty()) continue;
    for (const auto& e : cluster->endpoints) {
      const auto now = steady::now();
      if (now < e->next_check) continue;
      e->next_check = now + check.interval;
      const bool passed = probe(e->endpoint, check);
      const bool healthy = e->healthy.load();
      if (passed == healthy) {
        e->check_streak = 0;
        continue;
      }
      ++e->check_streak;
      if (e->check_streak >= (healthy ? check.unhealthy_threshold : check.healthy_threshold)) {
        e->check_streak = 0;
        e->healthy.store(passed);
        if (e->healthy_gauge != nullptr) e->healthy_gauge->set(passed ? 1 : 0);
        if (passed) {
          log::info("upstream endpoint passes its health checks", {{"cluster", name}, {"endpoint", e->endpoint.name}});
        } else {
          log::warn("upstream endpoint fails its health checks", {{"cluster", name}, {"endpoint", e->endpoint.name}});
        }
      }
    }
  }
}

Result<std::string> Gateway::Impl::identity_token(const identity::Principal& who, const std::string& tenant_id) {
  std::string key = who.subject + '\n' + tenant_id + '\n' + who.role + '\n' + (who.super_admin ? "1" : "0");
  for (const auto& p : who.permissions) key += '\n' + p;
  const auto now = steady::now();
  {
    std::lock_guard lock(token_mutex);
    if (auto it = tokens.find(key); it != tokens.end() && now < it->second.refresh_after) return it->second.token;
  }
  identity::AccessClaims claims;
  claims.sub = who.subject;
  claims.tenant_id = tenant_id;
  claims.role = who.role;
  claims.permissions = who.permissions;
  claims.super_admin = who.super_admin;
  claims.iss = options.issuer;
  claims.aud = options.token_audience;
  claims.jti = new_uuid_v7(clock);
  const auto issued = std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
  claims.iat = issued;
  claims.nbf = issued;
  claims.exp = issued + options.token_ttl.count();
  auto token = hooks.sign(claims);
  if (!token) return std::unexpected(token.error());
  std::lock_guard lock(token_mutex);
  if (tokens.size() >= 10'000) tokens.clear();  // callers come and go; bound the cache
  tokens[key] = {*token, now + options.token_ttl / 2};
  return *token;
}

std::shared_ptr<const void> Gateway::match(const http::RequestHead& head) const {
  auto routing = impl_->current();
  if (!routing) return nullptr;
  const Route* route = match_route(*routing->table, head, gateway::current_api_version().name);
  if (route == nullptr) return nullptr;
  return std::make_shared<const Matched>(Matched{std::move(routing), route});
}

std::variant<http::Response, std::shared_ptr<http::Exchange>> Gateway::admit(http::Request& request,
                                                                             std::shared_ptr<const void> matched) {
  // The routing in force when the route matched (a reload meanwhile does not matter to this request).
  const auto& matched_route = *std::static_pointer_cast<const Matched>(matched);
  const std::shared_ptr<const Routing> owner = matched_route.routing;
  const Route& route = *matched_route.route;
  request.route = route.name;
  request.options = &route.options;
  bool admitted = false;
  http::Response decided = impl_->hooks.guard(request, [&admitted](http::Request&) {
    admitted = true;
    http::Response r;
    r.status = http::k_forward_status;
    return r;
  });
  if (!admitted || decided.status != http::k_forward_status) return decided;
  // A refusal after the pipeline admitted: with the edge's answer fields (request id, RateLimit), and counted.
  const auto refuse = [&](http::Response r, std::string_view reason) {
    impl_->refused.with({route.name, std::string(reason)}).inc();
    for (const auto& [name, value] : decided.headers.fields()) {
      if (!r.headers.get(name)) r.headers.set(name, value);
    }
    if (impl_->hooks.http_metrics != nullptr) impl_->hooks.http_metrics->record(request, r.status, 0.0);
    return r;
  };

  // Placement: the tenant's dedicated cluster when a placement names it.
  std::string cluster_name = route.cluster;
  if (request.tenant) {
    const auto& t = *request.tenant;
    for (const auto& p : route.placements) {
      if (!p.plans.empty() && !listed(p.plans, t.plan)) continue;
      if (!p.isolation.empty() && !listed(p.isolation, tenancy::isolation_name(t.isolation))) continue;
      if (!p.tenants.empty() && !listed(p.tenants, t.id) && !listed(p.tenants, t.slug)) continue;
      cluster_name = p.cluster;
      break;
    }
  }
  auto cluster_it = owner->clusters.find(cluster_name);
  auto cluster = cluster_it->second;
  if (cluster->in_flight.load() >= cluster->config.max_requests) {
    http::Response r =
        http::problem(503, "unavailable", "Service Unavailable",
                      "The upstream has as many requests in flight as it takes; try again shortly.", request);
    r.headers.set("Retry-After", "1");
    return refuse(std::move(r), "overloaded");
  }

  auto exchange = std::make_shared<ForwardedExchange>(*impl_, owner, route, cluster, request);
  exchange->target = upstream_target(route, request.path, request.query);
  exchange->connect_timeout = cluster->config.connect_timeout;
  exchange->read_timeout = cluster->config.read_timeout;
  exchange->tunnel_idle_timeout = cluster->config.tunnel_idle_timeout;
  exchange->max_attempts = cluster->config.attempts;
  const bool has_body = request.headers.get("Transfer-Encoding").has_value() ||
                        request.headers.get("Content-Length").value_or("0") != "0";
  exchange->may_resend =
      (idempotent(request.method) || request.headers.get("Idempotency-Key").has_value()) && !has_body;
  exchange->resend_on_5xx = cluster->config.retry_on_5xx;
  exchange->finish_blocks = route.audit;
  // Version changes undone for a client that names an earlier Atrium-Version (docs/gateway.md, "Versions").
  if (!route.versions.empty()) {
    auto undo = changes_for(route.versions, request.headers.get("Atrium-Version").value_or(""));
    if (!undo.empty()) {
      exchange->transform_response = [undo](std::string_view body) { return answer_for_client(undo, body); };
      exchange->transform_request = [undo](std::string_view body) { return request_for_upstream(undo, body); };
    }
  }

  // The request's fields: the client's, without identity it could forge, transformed, then the verified identity.
  http::Headers& out = exchange->headers;
  const auto& rules = route.request_headers;
  for (const auto& [name, value] : request.headers.fields()) {
    if (name.size() >= Gateway::k_identity_prefix.size() &&
        http::iequals(std::string_view(name).substr(0, Gateway::k_identity_prefix.size()),
                      Gateway::k_identity_prefix)) {
      continue;
    }
    if (http::iequals(name, "X-Request-Id") || http::iequals(name, "traceparent") ||
        http::iequals(name, "X-Forwarded-For") || http::iequals(name, "X-Forwarded-Host") ||
        http::iequals(name, "X-Forwarded-Proto") || http::iequals(name, "Forwarded")) {
      continue;
    }
    if (http::iequals(name, "Authorization") && !route.forward_authorization) continue;
    if (http::iequals(name, "Host") && !route.host_rewrite.empty()) continue;
    if (std::any_of(rules.remove.begin(), rules.remove.end(),
                    [&](const std::string& r) { return http::iequals(r, name); })) {
      continue;
    }
    std::string field = name;
    for (const auto& [from, to] : rules.rename) {
      if (http::iequals(from, name)) field = to;
    }
    out.add(std::move(field), value);
  }
  if (!route.host_rewrite.empty()) out.set("Host", route.host_rewrite);
  for (const auto& [name, value] : rules.add) out.set(name, value);
  const auto forwarded_for = request.headers.list("X-Forwarded-For");
  out.set("X-Forwarded-For", forwarded_for ? *forwarded_for + ", " + request.remote_address : request.remote_address);
  if (auto host = request.headers.get("Host")) out.set("X-Forwarded-Host", std::string(*host));
  out.set("X-Forwarded-Proto", impl_->options.tls ? "https" : "http");
  out.set("X-Request-Id", request.request_id);
  out.set("traceparent", next_traceparent(request.headers.get("traceparent")));
  if (request.principal) {
    const auto& who = *request.principal;
    const std::string tenant_id = request.tenant ? request.tenant->id : who.tenant_id;
    auto token = impl_->identity_token(who, tenant_id);
    if (!token) {
      log::error("the upstream identity token could not be signed", {{"error", token.error().message}});
      http::Response r =
          http::problem(503, "unavailable", "Service Unavailable",
                        "The gateway cannot sign the caller's identity now; try again shortly.", request);
      r.headers.set("Retry-After", "1");
      return refuse(std::move(r), "identity");
    }
    out.set("X-Atrium-Identity", *token);
    out.set("X-Atrium-Subject", who.subject);
    out.set("X-Atrium-Subject-Type", who.kind == identity::Principal::Kind::api_key ? "api_key" : "user");
    if (!who.role.empty()) out.set("X-Atrium-Role", who.role);
    std::string permissions;
    for (const auto& p : who.permissions) permissions += (permissions.empty() ? "" : ",") + p;
    out.set("X-Atrium-Permissions", permissions);
    if (who.super_admin) out.set("X-Atrium-Super-Admin", "true");
  }
  if (request.tenant) {
    const auto& t = *request.tenant;
    out.set("X-Atrium-Tenant-Id", t.id);
    out.set("X-Atrium-Tenant-Slug", t.slug);
    out.set("X-Atrium-Isolation", std::string(tenancy::isolation_name(t.isolation)));
    out.set("X-Atrium-Plan", t.plan);
  }

  // The answer's fields: what the pipeline set (request id, RateLimit, security headers, CORS), the route's.
  // Caching and Vary are the upstream's to say.
  for (const auto& [name, value] : decided.headers.fields()) {
    if (!http::iequals(name, "Cache-Control") && !http::iequals(name, "Vary"))
      exchange->response_headers.set(name, value);
  }
  for (const auto& [name, value] : route.response_headers.add) exchange->response_headers.set(name, value);
  exchange->response_remove = route.response_headers.remove;
  return std::shared_ptr<http::Exchange>(std::move(exchange));
}

}  // namespace atrium::proxy
