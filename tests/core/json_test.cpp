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

TEST(ParseJson, RejectNulRefusesU0000InValuesAndNamesWithTheirPointer) {
  struct Case {
    const char* text;
    const char* pointer;
    const char* message;
  };
  for (const Case& c : std::initializer_list<Case>{
           {R"({"email":"victim@x.example.com\u0000zz"})", "/email", "\"/email\" contains a NUL character (U+0000)"},
           {R"({"a":[1,{"b":"\u0000"}]})", "/a/1/b", "\"/a/1/b\" contains"},
           {R"([["x"],["y","\u0000"]])", "/1/1", "\"/1/1\" contains"},
           {R"({"a/b":{"~":"x\u0000"}})", "/a~1b/~0", "\"/a~1b/~0\" contains"},
           {R"({"x":{"k\u0000":1}})", "/x", "a member name in \"/x\" contains"},
           {R"({"\u0000":1})", "", "a member name in the top-level object contains"},
           {R"("\u0000")", "", "the JSON document contains"},
       }) {
    SCOPED_TRACE(c.text);
    std::string error;
    std::optional<std::string> pointer;
    EXPECT_FALSE(parse_json(c.text, {.reject_nul = true}, &error, &pointer));
    EXPECT_EQ(pointer, std::optional<std::string>(c.pointer));
    EXPECT_NE(error.find(c.message), std::string::npos) << error;
    // Without reject_nul the same text parses, the NUL kept.
    EXPECT_TRUE(parse_json(c.text, {}, &error)) << error;
  }
  // Other failures leave the pointer unset.
  std::string error;
  std::optional<std::string> pointer;
  EXPECT_FALSE(parse_json("{\"a\":", {.reject_nul = true}, &error, &pointer));
  EXPECT_FALSE(pointer);
  EXPECT_FALSE(parse_json("[[[1]]]", {.max_depth = 2, .reject_nul = true}, &error, &pointer));
  EXPECT_FALSE(pointer);
  // Everything else is untouched: other control characters, an escaped backslash before "u0000".
  auto j = parse_json(R"({"a":"\u0001","b":"\\u0000"})", {.reject_nul = true}, &error, &pointer);
  ASSERT_TRUE(j) << error;
  EXPECT_EQ((*j)["b"], "\\u0000");
}

}  // namespace
}  // namespace atrium
