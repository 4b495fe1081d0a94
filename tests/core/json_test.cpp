#include "core/json.hpp"

#include <gtest/gtest.h>

namespace atrium {
namespace {

TEST(ParseJson, AcceptsValidDocuments) {
  std::string error;
  auto j = parse_json(R"({"a":[1,2,{"b":null}],"c":"\u00e9","d":1.5,"e":-3,"f":true})", {}, &error);
  ASSERT_TRUE(j) << error;
  EXPECT_EQ((*j)["a"][2]["b"], nullptr);
  EXPECT_EQ((*j)["c"], "\u00e9");
  EXPECT_EQ((*j)["e"], -3);
}

TEST(ParseJson, RefusesMalformedTextWithAPosition) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,2", "nul", "{\"a\" 1}", "\"\xff\"", "1e999", "[1,]", "{} {}"}) {
    std::string error;
    EXPECT_FALSE(parse_json(bad, {}, &error)) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(ParseJson, NestingAtTheLimitIsAcceptedAndOneDeeperIsRefused) {
  const std::string ok = std::string(64, '[') + std::string(64, ']');
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  std::string error;
  EXPECT_TRUE(parse_json(ok, {.max_depth = 64}, &error)) << error;
  EXPECT_FALSE(parse_json(deep, {.max_depth = 64}, &error));
  EXPECT_NE(error.find("deeper than 64"), std::string::npos) << error;
}

TEST(ParseJson, HugeNestingDoesNotRecurse) {
  const std::string deep = std::string(1'000'000, '[');
  std::string error;
  EXPECT_FALSE(parse_json(deep, {}, &error));
  const std::string objects = [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    return s;
  }();
  EXPECT_FALSE(parse_json(objects, {}, &error));
}

TEST(ParseJson, DuplicateKeysKeepTheLast) {
  std::string error;
  auto j = parse_json(R"({"a":1,"a":2})", {}, &error);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["a"], 2);
}

}  // namespace
}  // namespace atrium
