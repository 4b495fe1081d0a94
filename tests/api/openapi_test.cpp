#include "api/openapi.hpp"

#include <gtest/gtest.h>

#include <set>

#include "api/routes.hpp"
#include "core/json.hpp"
#include "support/test_platform.hpp"

namespace atrium::api {
namespace {

std::set<std::string> registered_operations() {
  auto platform = test::TestPlatform::create(storage::Backend::sqlite);
  http::Router router;
  register_routes(router, platform->platform());
  std::set<std::string> out;
  for (const auto& route : router.routes()) {
    std::string method(http::method_name(route->method));
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.insert(method + " " + route->pattern);
  }
  return out;
}

Json document() {
  std::string error;
  auto doc = parse_json(openapi_json(), {}, &error);
  EXPECT_TRUE(doc) << error;
  return doc.value_or(Json::object());
}

TEST(OpenApi, IsVersion31) { EXPECT_EQ(document().value("openapi", ""), "3.1.0"); }

TEST(OpenApi, DocumentsExactlyTheRegisteredRoutes) {
  const Json doc = document();
  std::set<std::string> documented;
  static const std::set<std::string> methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};
  for (const auto& [path, item] : doc.at("paths").items()) {
    for (const auto& [method, _] : item.items()) {
      if (methods.contains(method)) documented.insert(method + " " + path);
    }
  }
  const auto registered = registered_operations();
  for (const auto& op : registered) EXPECT_TRUE(documented.contains(op)) << "not in docs/openapi.yaml: " << op;
  for (const auto& op : documented) EXPECT_TRUE(registered.contains(op)) << "documented but not served: " << op;
}

TEST(OpenApi, EveryOperationDocumentsItsResponses) {
  const Json doc = document();
  for (const auto& [path, item] : doc.at("paths").items()) {
    for (const auto& [method, op] : item.items()) {
      if (!op.is_object()) continue;
      EXPECT_TRUE(op.contains("operationId")) << method << " " << path;
      EXPECT_TRUE(op.contains("responses") && !op["responses"].empty()) << method << " " << path;
    }
  }
}

}  // namespace
}  // namespace atrium::api
