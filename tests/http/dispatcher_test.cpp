#include "http/dispatcher.hpp"

#include <gtest/gtest.h>

#include "http/middleware.hpp"

namespace atrium::http {
namespace {

TEST(Dispatcher, MiddlewareRunsInOrderAroundTheHandler) {
  std::vector<std::string> trace;
  Router router;
  router.add(Method::get, "/x/{id}", [&](Request& r) {
    trace.push_back("handler " + std::string(r.param("id")));
    return Response::text(200, "ok");
  });
  auto mw = [&](std::string name) -> Middleware {
    return [&trace, name](Request& r, const Next& next) {
      trace.push_back(name + " in");
      Response res = next(r);
      trace.push_back(name + " out");
      return res;
    };
  };
  Dispatcher d(std::move(router), {mw("a"), mw("b")}, {});
  Request req;
  req.method = Method::get;
  req.path = "/x/42";
  auto p = d.prepare(req);
  EXPECT_EQ(req.route, "/x/{id}");
  EXPECT_EQ(d.dispatch(req, p).status, 200);
  EXPECT_EQ(trace, (std::vector<std::string>{"a in", "b in", "handler 42", "b out", "a out"}));
}

TEST(Dispatcher, MiddlewareMayAnswerWithoutCallingNext) {
  bool called = false;
  Router router;
  router.add(Method::get, "/x", [&](Request&) {
    called = true;
    return Response::text(200, "ok");
  });
  Dispatcher d(std::move(router), {[](Request&, const Next&) { return Response::text(429, "slow down"); }}, {});
  Request req;
  req.path = "/x";
  auto p = d.prepare(req);
  EXPECT_EQ(d.dispatch(req, p).status, 429);
  EXPECT_FALSE(called);
}

TEST(Dispatcher, RoutesDeclareWhereTheyRun) {
  Router router;
  router.add(Method::get, "/fast", [](Request&) { return Response::text(200, ""); }, {.execution = Execution::io});
  router.add(Method::get, "/db", [](Request&) { return Response::text(200, ""); });
  Dispatcher d(std::move(router), {}, {});
  Request fast;
  fast.path = "/fast";
  EXPECT_EQ(d.prepare(fast).execution, Execution::io);
  Request db;
  db.path = "/db";
  EXPECT_EQ(d.prepare(db).execution, Execution::worker);
}

TEST(Dispatcher, QueryParametersAreDecoded) {
  Request r;
  r.query = "limit=20&cursor=a%2Fb+c&empty=&flag";
  EXPECT_EQ(r.query_param("limit"), "20");
  EXPECT_EQ(r.query_param("cursor"), "a/b c");
  EXPECT_EQ(r.query_param("empty"), "");
  EXPECT_EQ(r.query_param("flag"), "");
  EXPECT_EQ(r.query_param("missing"), std::nullopt);
}

}  // namespace
}  // namespace atrium::http
