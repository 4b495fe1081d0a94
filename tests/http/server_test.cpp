#include "http/server.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <thread>

#include "api/routes.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "http/middleware.hpp"
#include "http/problem.hpp"
#include "support/test_database.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::http {
namespace {

using test::RawClient;
using namespace std::chrono_literals;

// A latch the slow test route waits on.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool entered = false;
  bool open = false;
  void enter_and_wait() {
    std::unique_lock lock(mutex);
    entered = true;
    cv.notify_all();
    cv.wait(lock, [&] { return open; });
  }
  bool wait_entered(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return entered; });
  }
  void release() {
    std::lock_guard lock(mutex);
    open = true;
    cv.notify_all();
  }
};

// The real routes and middleware plus two test-only routes, served on a free port from a background thread.
class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    test_platform_ = test::TestPlatform::create(storage::Backend::sqlite);
    metrics::register_process_collector(registry());
    http_metrics_ = std::make_unique<HttpMetrics>(registry());
    Router router;
    api::register_routes(router, test_platform_->platform());
    router.add(Method::post, "/test/echo", [](Request& req) { return Response::json(200, *req.json); },
               {.json_body = true});
    router.add(Method::get, "/test/slow", [this](Request&) {
      gate_.enter_and_wait();
      return Response::text(200, "slow done");
    });
    router.add(Method::get, "/test/throw", [](Request&) -> Response { throw std::runtime_error("bug"); });
    std::vector<Middleware> middleware{request_id_middleware(SystemClock::instance()),
                                       metrics_middleware(*http_metrics_, SystemClock::instance())};
    auto dispatcher = std::make_shared<const Dispatcher>(std::move(router), std::move(middleware), JsonLimits{64});
    options.host = "127.0.0.1";
    options.port = 0;
    options.io_threads = 2;
    options.worker_threads = 4;
    server_ = std::make_unique<Server>(options, dispatcher);
    server_->on_drain([this] { test_platform_->platform().draining = true; });
    port_ = server_->port();
    thread_ = std::thread([this] {
      server_->run();
      stopped_ = true;
    });
  }

  void TearDown() override {
    gate_.release();
    if (server_) server_->shutdown();
    if (thread_.joinable()) thread_.join();
  }

  std::optional<test::RawResponse> get(const std::string& path) { return test::http_get(port_, path); }

  static Json body_json(const test::RawResponse& r) {
    std::string error;
    auto j = parse_json(r.body, {}, &error);
    EXPECT_TRUE(j) << error << " in " << r.body;
    return j.value_or(Json());
  }

  static void expect_problem(const test::RawResponse& r, int status) {
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.headers.at("content-type"), "application/problem+json");
    const Json j = body_json(r);
    EXPECT_EQ(j.value("status", 0), status);
    for (const char* member : {"type", "title", "detail", "request_id"}) {
      EXPECT_TRUE(j.contains(member) && j[member].is_string() && !j[member].get<std::string>().empty()) << member;
    }
    EXPECT_EQ(j.value("request_id", ""), r.headers.count("x-request-id") ? r.headers.at("x-request-id") : "-");
  }

  void expect_still_serving() {
    auto r = get("/health");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }

  metrics::Registry& registry() { return test_platform_->platform().registry; }
  bool draining() { return test_platform_->platform().draining.load(); }

  std::unique_ptr<test::TestPlatform> test_platform_;
  std::unique_ptr<HttpMetrics> http_metrics_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
  Gate gate_;
};

TEST_F(ServerTest, HealthReadyAndMetricsAnswer) {
  start();
  auto health = get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(body_json(*health)["status"], "ok");
  EXPECT_FALSE(health->headers.at("x-request-id").empty());
  auto ready = get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(body_json(*ready)["database"], "sqlite");
  auto metrics = get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("http_request_duration_seconds_bucket{method=\"GET\",route=\"/ready\""),
            std::string::npos);
}

TEST_F(ServerTest, ReadyIsUnavailableWhenMigrationsArePending) {
  start();
  // A database whose schema is behind this build: take the last tenant migration back out.
  ASSERT_TRUE(test_platform_->platform().db().transact([](storage::Transaction& tx) -> Result<void> {
    auto r = tx.execute(storage::Statement{"", "DELETE FROM tenant_schema_migrations"});
    if (!r) return std::unexpected(r.error());
    return {};
  }));
  auto ready = get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("atrium migrate"), std::string::npos) << ready->body;
}

TEST_F(ServerTest, MetricLabelsUseRouteTemplatesNotRawPaths) {
  start();
  ASSERT_TRUE(get("/no-such-path-12345"));
  auto metrics = get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->body.find("no-such-path-12345"), std::string::npos);
  EXPECT_NE(metrics->body.find("route=\"unmatched\",status=\"404\""), std::string::npos);
}

TEST_F(ServerTest, UnknownRouteIs404Problem) {
  start();
  auto r = get("/nope");
  ASSERT_TRUE(r);
  expect_problem(*r, 404);
  EXPECT_EQ(body_json(*r)["instance"], "/nope");
}

TEST_F(ServerTest, WrongMethodIs405WithAllow) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 405);
  EXPECT_EQ(r->headers.at("allow"), "GET, HEAD");
}

TEST_F(ServerTest, InboundRequestIdIsEchoedAndBadOnesReplaced) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers.at("x-request-id"), "abc-123");
  EXPECT_EQ(body_json(*r)["request_id"], "abc-123");
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad id with spaces\r\n\r\n"));
  auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_TRUE(is_uuid(r2->headers.at("x-request-id"))) << r2->headers.at("x-request-id");
}

TEST_F(ServerTest, OversizedBodyIs413AndServerKeepsServing) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(
      "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 413);
  EXPECT_TRUE(c.wait_closed(5s));
  expect_still_serving();
}

TEST_F(ServerTest, OversizedChunkedBodyIs413) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send(
      "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk(64 * 1024, 'a');
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  bool refused = false;
  for (int i = 0; i < 20 && !refused; ++i) refused = !c.send(std::string(size) + chunk + "\r\n");
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 413);
  expect_still_serving();
}

TEST_F(ServerTest, OversizedHeaderIs431) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20 * 1024, 'b') + "\r\n\r\n"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 431);
  expect_still_serving();
}

TEST_F(ServerTest, MalformedRequestIs400) {
  start();
  for (const std::string& bad : {std::string("BLAH\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n"),
                                 std::string("GET /health HTTP/1.1\r\nBad Header\r\n\r\n"),
                                 std::string("POST /test/echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n")}) {
    RawClient c(port_);
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response();
    ASSERT_TRUE(r) << bad;
    expect_problem(*r, 400);
  }
  expect_still_serving();
}

TEST_F(ServerTest, SlowHeadersAreDisconnected) {
  ServerOptions o;
  o.header_timeout = 300ms;
  start(o);
  RawClient c(port_);
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_TRUE(c.wait_closed(10s));
  expect_still_serving();
}

TEST_F(ServerTest, IdleKeepAliveConnectionsAreClosed) {
  ServerOptions o;
  o.idle_timeout = 300ms;
  start(o);
  RawClient c(port_);
  ASSERT_TRUE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(c.read_response());
  EXPECT_TRUE(c.wait_closed(10s));
}

TEST_F(ServerTest, MalformedJsonIs400) {
  start();
  RawClient c(port_);
  const std::string body = "{\"a\": [1, 2";
  ASSERT_TRUE(c.send("POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 400);
  EXPECT_EQ(body_json(*r)["type"], "/problems/malformed-json");
}

TEST_F(ServerTest, JsonNestedDeeperThan64Is400And64Passes) {
  start();
  for (int depth : {64, 65}) {
    RawClient c(port_);
    const std::string body =
        std::string(static_cast<std::size_t>(depth), '[') + std::string(static_cast<std::size_t>(depth), ']');
    ASSERT_TRUE(c.send("POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    if (depth == 64) {
      EXPECT_EQ(r->status, 200);
      EXPECT_EQ(r->body, body);
    } else {
      expect_problem(*r, 400);
      EXPECT_NE(r->body.find("deeper than 64"), std::string::npos);
    }
  }
}

TEST_F(ServerTest, NonJsonMediaTypeIs415) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"));
  auto r = c.read_response();
  ASSERT_TRUE(r);
  expect_problem(*r, 415);
}

TEST_F(ServerTest, HandlerExceptionIs500AndServerKeepsServing) {
  start();
  auto r = get("/test/throw");
  ASSERT_TRUE(r);
  expect_problem(*r, 500);
  expect_still_serving();
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  RawClient c(port_);
  const std::string body = "{\"n\":1}";
  ASSERT_TRUE(
      c.send("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
             "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(body.size()) + "\r\n\r\n" + body + "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::vector<int> statuses;
  for (int i = 0; i < 4; ++i) {
    auto r = c.read_response();
    ASSERT_TRUE(r) << i;
    statuses.push_back(r->status);
    if (i == 2) {
      EXPECT_EQ(r->body, body);
    }
  }
  EXPECT_EQ(statuses, (std::vector<int>{200, 404, 200, 200}));
}

TEST_F(ServerTest, HeadAnswersWithoutBody) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(c.send("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The HEAD response announces the GET body's length but carries no body, so the next response parses cleanly
  // only if the server sent none.
  auto head = c.read_response(5s, /*has_body=*/false);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers.at("content-length"), "15");
  auto get = c.read_response(5s);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "{\"status\":\"ok\"}");
}

TEST_F(ServerTest, ExpectContinueGetsAnInterimResponse) {
  start();
  RawClient c(port_);
  ASSERT_TRUE(
      c.send("POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: "
             "100-continue\r\n\r\n"));
  auto interim = c.read_response(5s);
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send("{}"));
  auto r = c.read_response(5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ServerTest, ShutdownLetsTheSlowRequestFinishThenStops) {
  ServerOptions o;
  o.handle_signals = true;
  start(o);
  RawClient slow(port_);
  ASSERT_TRUE(slow.send("GET /test/slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(gate_.wait_entered(10s));
  RawClient idle(port_);
  ASSERT_TRUE(idle.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle.read_response());

  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  EXPECT_TRUE(idle.wait_closed(10s)) << "idle keep-alive connections close at once";
  // Readiness turns 503 while draining (asked through the dispatcher: the listener is closed).
  for (int i = 0; i < 1000 && !draining(); ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(draining());
  EXPECT_FALSE(stopped_.load());

  gate_.release();
  auto r = slow.read_response(10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "slow done");
  EXPECT_EQ(r->headers.at("connection"), "close");
  thread_.join();
  EXPECT_TRUE(stopped_.load());
  RawClient after(port_);
  EXPECT_FALSE(after.connected() && after.send("GET /health HTTP/1.1\r\n\r\n") && after.read_response(1s));
}

TEST_F(ServerTest, DrainTimeoutBoundsTheWait) {
  ServerOptions o;
  o.drain_timeout = 200ms;
  start(o);
  RawClient slow(port_);
  ASSERT_TRUE(slow.send("GET /test/slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(gate_.wait_entered(10s));
  server_->shutdown();
  // run() returns once the drain timeout passes, although the handler is still blocked.
  for (int i = 0; i < 10000 && !stopped_; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(stopped_.load());
  gate_.release();
  thread_.join();
  server_.reset();  // joins the worker that was still running
}

}  // namespace
}  // namespace atrium::http
