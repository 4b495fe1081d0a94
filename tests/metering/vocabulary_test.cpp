// Metering's names and rules (src/metering/vocabulary.cpp), which the API's decoders and ingestion apply: metric
// names, idempotency keys, property filters, aggregations and summary windows, at their documented edges
// (docs/metering.md).
#include <gtest/gtest.h>

#include "metering/metering.hpp"

namespace atrium::metering {
namespace {

TEST(MeteringVocabulary, MetricNamesAreOneTo64SafeCharactersStartingWithALetterOrDigit) {
  for (const std::string& ok :
       std::vector<std::string>{"api_calls", "a", "9lives", "storage.gb-hours", "seats:pro/eu", std::string(64, 'm')}) {
    EXPECT_TRUE(valid_metric_name(ok)) << ok;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "_leading", "-leading", ".dot", "with space", "emoji\xF0\x9F\x98\x80", "semi;colon",
                                std::string(65, 'm'), std::string("nul\0x", 5)}) {
    EXPECT_FALSE(valid_metric_name(bad)) << bad;
  }
}

TEST(MeteringVocabulary, IdempotencyKeysAreOneTo255PrintableAsciiCharacters) {
  EXPECT_TRUE(valid_idempotency_key("k"));
  EXPECT_TRUE(valid_idempotency_key(" ~!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}"));
  EXPECT_TRUE(valid_idempotency_key(std::string(k_max_idempotency_key_bytes, 'k')));
  EXPECT_FALSE(valid_idempotency_key(""));
  EXPECT_FALSE(valid_idempotency_key(std::string(k_max_idempotency_key_bytes + 1, 'k')));
  EXPECT_FALSE(valid_idempotency_key("tab\there"));
  EXPECT_FALSE(valid_idempotency_key("del\x7f"));
  EXPECT_FALSE(valid_idempotency_key("caf\xc3\xa9"));
}

TEST(MeteringVocabulary, FiltersArePropertyNamesToStringsNumbersOrBooleans) {
  auto ok = parse_filters(Json{{"plan", "pro"}, {"tier", 2}, {"beta", true}, {std::string(128, 'p'), 1.5}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->size(), 4u);
  EXPECT_EQ(ok->at("plan"), "pro");
  EXPECT_TRUE(parse_filters(Json::object()));
  for (const Json& bad : {Json::array(), Json("plan=pro"), Json{{"plan", nullptr}}, Json{{"plan", Json::array()}},
                          Json{{"plan", Json{{"nested", 1}}}}, Json{{"", "x"}}, Json{{std::string(129, 'p'), 1}}}) {
    auto r = parse_filters(bad);
    ASSERT_FALSE(r) << bad.dump();
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("filters"), std::string::npos) << r.error().message;
  }
}

TEST(MeteringVocabulary, AggregationsAndWindowsRoundTripByName) {
  for (Aggregation a :
       {Aggregation::sum, Aggregation::count, Aggregation::max, Aggregation::unique_count, Aggregation::latest}) {
    EXPECT_EQ(parse_aggregation(aggregation_name(a)), a);
  }
  EXPECT_EQ(aggregation_name(Aggregation::unique_count), "unique_count");
  EXPECT_FALSE(parse_aggregation("SUM"));
  EXPECT_FALSE(parse_aggregation("average"));
  EXPECT_EQ(parse_window("hour"), Window::hour);
  EXPECT_EQ(parse_window("day"), Window::day);
  EXPECT_EQ(parse_window("month"), Window::month);
  EXPECT_FALSE(parse_window("week"));
  EXPECT_FALSE(parse_window(""));
}

}  // namespace
}  // namespace atrium::metering
