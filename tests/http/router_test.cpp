#include "http/router.hpp"

#include <gtest/gtest.h>

namespace atrium::http {
namespace {

Handler tag(std::string name) {
  return [name](Request&) { return Response::text(200, name); };
}

std::string run(const Router::Match& m) {
  Request r;
  return m.route->handler(r).body;
}

TEST(Router, MatchesLiteralAndParameterSegments) {
  Router router;
  router.add(Method::get, "/v1/projects", tag("list"));
  router.add(Method::get, "/v1/projects/{id}", tag("get"));
  router.add(Method::get, "/v1/projects/{id}/members/{member}", tag("member"));
  auto m = router.match(Method::get, "/v1/projects/p1/members/u2");
  ASSERT_EQ(m.outcome, Router::Outcome::found);
  EXPECT_EQ(run(m), "member");
  ASSERT_EQ(m.params.size(), 2u);
  EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>{"id", "p1"}));
  EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>{"member", "u2"}));
  EXPECT_EQ(run(router.match(Method::get, "/v1/projects")), "list");
}

TEST(Router, LiteralWinsOverParameterAndBacktracks) {
  Router router;
  router.add(Method::get, "/v1/projects/{id}", tag("param"));
  router.add(Method::get, "/v1/projects/search", tag("literal"));
  router.add(Method::get, "/v1/{kind}/x/y", tag("deep"));
  EXPECT_EQ(run(router.match(Method::get, "/v1/projects/search")), "literal");
  EXPECT_EQ(run(router.match(Method::get, "/v1/projects/abc")), "param");
  // "projects" is a literal at depth 2 but only the {kind} branch continues with /x/y.
  EXPECT_EQ(run(router.match(Method::get, "/v1/projects/x/y")), "deep");
}

TEST(Router, UnknownPathsAreNotFound) {
  Router router;
  router.add(Method::get, "/health", tag("h"));
  router.add(Method::get, "/v1/projects/{id}", tag("p"));
  for (const char* path :
       {"/", "", "/healthz", "/health/", "/v1/projects", "/v1/projects/", "/v1/projects/a/b", "health"}) {
    EXPECT_EQ(router.match(Method::get, path).outcome, Router::Outcome::not_found) << path;
  }
}

TEST(Router, WrongMethodListsAllowedMethods) {
  Router router;
  router.add(Method::get, "/v1/projects", tag("list"));
  router.add(Method::post, "/v1/projects", tag("create"));
  auto m = router.match(Method::delete_, "/v1/projects");
  EXPECT_EQ(m.outcome, Router::Outcome::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, HEAD, POST");
}

TEST(Router, HeadFallsBackToGet) {
  Router router;
  router.add(Method::get, "/health", tag("h"));
  auto m = router.match(Method::head, "/health");
  ASSERT_EQ(m.outcome, Router::Outcome::found);
  EXPECT_EQ(run(m), "h");
}

TEST(Router, RefusesDuplicateAndMalformedPatterns) {
  Router router;
  router.add(Method::get, "/a/{id}", tag("a"));
  EXPECT_THROW(router.add(Method::get, "/a/{id}", tag("b")), std::invalid_argument);
  EXPECT_THROW(router.add(Method::get, "/a/{other}/x", tag("c")), std::invalid_argument);
  EXPECT_THROW(router.add(Method::get, "a", tag("d")), std::invalid_argument);
  EXPECT_THROW(router.add(Method::get, "/a{b", tag("e")), std::invalid_argument);
}

}  // namespace
}  // namespace atrium::http
