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

// A NUL byte in a path parameter, a decoded query parameter or a string of a JSON body never reaches a handler:
// 400 /problems/validation naming the field, before the handler runs.
TEST(Dispatcher, NulInParametersOrBodyIsRefusedBeforeTheHandler) {
  int handled = 0;
  Router router;
  router.add(Method::get, "/things/{id}", [&](Request&) {
    ++handled;
    return Response::text(200, "ok");
  });
  router.add(Method::post, "/things",
             [&](Request&) {
               ++handled;
               return Response::text(200, "ok");
             },
             {.json_body = true});
  Dispatcher d(std::move(router), {}, {});
  struct Case {
    Method method;
    std::string path;
    std::string query;
    std::string body;
    std::string detail;  // what the problem's detail must say
  };
  const std::vector<Case> cases{
      {Method::get, "/things/1", "status=%00", "", "query parameter \"status\" contains a NUL character (U+0000)"},
      {Method::get, "/things/1", "limit=5&status=active%00zz", "", "query parameter \"status\""},
      {Method::get, "/things/1", "st%00atus=x", "", "a query parameter name contains a NUL character"},
      {Method::get, std::string("/things/a\0b", 11), "", "", "path parameter \"id\" contains a NUL character"},
      {Method::post, "/things", "", R"({"email":"victim@x.example.com\u0000zz"})",
       "body: \"/email\" contains a NUL character (U+0000)"},
      {Method::post, "/things", "", R"({"a":{"b":["ok","\u0000"]}})", "body: \"/a/b/1\" contains a NUL character"},
      {Method::post, "/things", "", R"({"a/~b":"\u0000"})", "body: \"/a~1~0b\" contains"},
      {Method::post, "/things", "", R"({"ok":1,"na\u0000me":1})", "body: a member name in the top-level object"},
      {Method::post, "/things", "", R"("\u0000")", "body: the JSON document contains a NUL character"},
      {Method::post, "/things", "status=%00", R"({"email":"a@b.example"})", "query parameter \"status\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + "?" + c.query + " " + c.body);
    Request req;
    req.method = c.method;
    req.path = c.path;
    req.query = c.query;
    req.body = c.body;
    req.headers.set("Content-Type", "application/json");
    auto p = d.prepare(req);
    ASSERT_EQ(p.match.outcome, Router::Outcome::found);
    const Response res = d.dispatch(req, p);
    EXPECT_EQ(res.status, 400);
    EXPECT_EQ(res.headers.get("Content-Type").value_or(""), "application/problem+json");
    const Json problem = Json::parse(res.body);
    EXPECT_EQ(problem.value("type", ""), "/problems/validation");
    EXPECT_NE(problem.value("detail", "").find(c.detail), std::string::npos) << problem.value("detail", "");
  }
  EXPECT_EQ(handled, 0);

  // Escaped and encoded text that is not NUL still goes through.
  Request ok;
  ok.method = Method::post;
  ok.path = "/things";
  ok.query = "status=%01active&x=%2500";
  ok.body = R"({"email":"a\u0001b@x.example","n":"\\u0000"})";
  ok.headers.set("Content-Type", "application/json");
  auto p = d.prepare(ok);
  EXPECT_EQ(d.dispatch(ok, p).status, 200);
  EXPECT_EQ(handled, 1);
}

}  // namespace
}  // namespace atrium::http
