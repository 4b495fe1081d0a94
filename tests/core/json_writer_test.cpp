#include "core/json_writer.hpp"

#include <gtest/gtest.h>

#include "core/json.hpp"

namespace atrium {
namespace {

TEST(JsonWriter, WritesNestedContainersThatParseBack) {
  JsonWriter w;
  w.begin_object().key("data").begin_array();
  for (int i = 0; i < 3; ++i) w.begin_object().key("n").number(i).key("s").string("x" + std::to_string(i)).end_object();
  w.end_array().key("next").null().key("empty").begin_array().end_array().end_object();
  const std::string text = w.take();
  EXPECT_EQ(text, R"({"data":[{"n":0,"s":"x0"},{"n":1,"s":"x1"},{"n":2,"s":"x2"}],"next":null,"empty":[]})");
}

TEST(JsonWriter, EscapesExactlyLikeTheDomSerialiser) {
  for (const std::string& s : {std::string("plain"), std::string("quote \" backslash \\ slash /"),
                               std::string("tab\tnewline\nreturn\r"), std::string("\x01\x1f control"),
                               std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), std::string("\0nul", 4)}) {
    std::string out;
    append_json_string(out, s);
    EXPECT_EQ(out, Json(s).dump()) << s;
  }
}

}  // namespace
}  // namespace atrium
