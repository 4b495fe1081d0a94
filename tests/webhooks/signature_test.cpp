#include "webhooks/signature.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <set>
#include <string>

namespace atrium::webhooks {
namespace {

constexpr char kSecret[] = "whsec_test_secret";
constexpr char kPingBody[] = R"({"event":"ping","id":"evt_1"})";
constexpr std::int64_t kTime = 1'700'000'000;
// printf '%s' '1700000000.{"event":"ping","id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec_test_secret'
constexpr char kGoldenMac[] = "2c3f39b595c26ca0f7d9d0b1431618d7978f5b0975a64c7170a899db53ac89f3";
// printf '%s' '1700000000.' | openssl dgst -sha256 -hmac 'whsec_test_secret'
constexpr char kGoldenEmptyBodyMac[] = "316b9ab98c15bfa039d243f3196acee619cf29749a91a634e6a8154e2f7b6727";

std::string golden_header() { return std::string("t=1700000000,v1=") + kGoldenMac; }

TEST(WebhookSignatureTest, SignMatchesIndependentlyComputedVector) {
  EXPECT_EQ(sign(kSecret, kTime, kPingBody), golden_header());
  EXPECT_EQ(sign(kSecret, kTime, ""), std::string("t=1700000000,v1=") + kGoldenEmptyBodyMac);
  // printf "%s" "1700000000.{}" | openssl dgst -sha256 -hmac "" (an empty key is still a key)
  EXPECT_EQ(sign("", kTime, "{}"), "t=1700000000,v1=a9dc44c8eda3de70e9cbf3e488895f1abc26acb1461d3124a3cb886af35251cf");
}

TEST(WebhookSignatureTest, VerifyAcceptsGoldenVectorWithinTolerance) {
  EXPECT_TRUE(verify(golden_header(), kSecret, kPingBody, kTime));
  EXPECT_TRUE(verify(golden_header(), kSecret, kPingBody, kTime + 300));
  EXPECT_TRUE(verify(golden_header(), kSecret, kPingBody, kTime - 300));  // the sender's clock is a little ahead
  EXPECT_TRUE(verify(golden_header(), kSecret, kPingBody, kTime + 10, 10));
}

TEST(WebhookSignatureTest, VerifyRejectsTamperedBodySecretOrTimestamp) {
  EXPECT_FALSE(verify(golden_header(), kSecret, R"({"event":"ping","id":"evt_2"})", kTime));
  EXPECT_FALSE(verify(golden_header(), kSecret, std::string(kPingBody) + " ", kTime));
  EXPECT_FALSE(verify(golden_header(), "whsec_test_secreT", kPingBody, kTime));
  EXPECT_FALSE(verify(golden_header(), "", kPingBody, kTime));
  // A replayed MAC under a fresher timestamp does not verify: the timestamp is part of the signed text.
  EXPECT_FALSE(verify(std::string("t=1700000100,v1=") + kGoldenMac, kSecret, kPingBody, kTime + 100));
  // One flipped hex digit.
  std::string flipped = golden_header();
  flipped.back() = flipped.back() == '3' ? '4' : '3';
  EXPECT_FALSE(verify(flipped, kSecret, kPingBody, kTime));
}

TEST(WebhookSignatureTest, VerifyRejectsStaleAndFutureTimestamps) {
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, kTime + 301));
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, kTime - 301));
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, kTime + 11, 10));
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, kTime, -1));
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, std::numeric_limits<std::int64_t>::min()));
  EXPECT_FALSE(verify(golden_header(), kSecret, kPingBody, std::numeric_limits<std::int64_t>::max()));
  // A freshly signed header verifies at its own time.
  const std::int64_t now = 1'900'000'000;
  EXPECT_TRUE(verify(sign(kSecret, now, kPingBody), kSecret, kPingBody, now));
}

TEST(WebhookSignatureTest, VerifyAcceptsAnyOfSeveralV1Entries) {
  const std::string other = sign("whsec_old_secret", kTime, kPingBody);
  const std::string other_mac = other.substr(other.find("v1=") + 3);
  // The matching MAC first, last, or between others.
  EXPECT_TRUE(verify(golden_header() + ",v1=" + other_mac, kSecret, kPingBody, kTime));
  EXPECT_TRUE(verify("t=1700000000,v1=" + other_mac + ",v1=" + kGoldenMac, kSecret, kPingBody, kTime));
  EXPECT_TRUE(
      verify("t=1700000000,v1=" + other_mac + ",v1=" + kGoldenMac + ",v1=" + other_mac, kSecret, kPingBody, kTime));
  EXPECT_TRUE(verify("t=1700000000,v1=" + other_mac, "whsec_old_secret", kPingBody, kTime));
  EXPECT_FALSE(verify("t=1700000000,v1=" + other_mac + ",v1=" + other_mac, kSecret, kPingBody, kTime));
}

TEST(WebhookSignatureTest, SignRotatingEmitsOneEntryPerSecretAndEachVerifies) {
  const std::string header = sign_rotating({"whsec_old_secret", kSecret}, kTime, kPingBody);
  EXPECT_EQ(header, "t=1700000000,v1=" + sign("whsec_old_secret", kTime, kPingBody).substr(16) + ",v1=" + kGoldenMac);
  EXPECT_TRUE(verify(header, kSecret, kPingBody, kTime));
  EXPECT_TRUE(verify(header, "whsec_old_secret", kPingBody, kTime));
  EXPECT_FALSE(verify(header, "whsec_third_secret", kPingBody, kTime));
  EXPECT_EQ(sign_rotating({}, kTime, kPingBody), "t=1700000000");
  EXPECT_FALSE(verify(sign_rotating({}, kTime, kPingBody), kSecret, kPingBody, kTime));
}

TEST(WebhookSignatureTest, VerifyToleratesWhitespaceUnknownSchemesAndUpperCaseHex) {
  EXPECT_TRUE(verify(std::string(" t=1700000000 , v0=deadbeef, v1=") + kGoldenMac + " ", kSecret, kPingBody, kTime));
  EXPECT_TRUE(verify(std::string("v1=") + kGoldenMac + ",t=1700000000", kSecret, kPingBody, kTime));
  std::string upper = kGoldenMac;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(verify("t=1700000000,v1=" + upper, kSecret, kPingBody, kTime));
}

TEST(WebhookSignatureTest, VerifyRejectsMalformedHeaders) {
  const std::string mac = kGoldenMac;
  for (const std::string& header : {
           std::string(""),
           "v1=" + mac,                            // no timestamp
           std::string("t=1700000000"),            // no v1
           "t=1700000000,t=1700000000,v1=" + mac,  // two timestamps
           "t=,v1=" + mac,                         // empty timestamp
           "t=-1700000000,v1=" + mac,              // signed timestamp
           "t=+1700000000,v1=" + mac,              // sign character
           "t=17e8,v1=" + mac,                     // not decimal
           "t=99999999999999999999999,v1=" + mac,  // overflows int64
           "t=1700000000,v1=" + mac.substr(1),     // short MAC
           "t=1700000000,v1=" + mac + "0",         // long MAC
           "t=1700000000,v1=zz" + mac.substr(2),   // not hex
           "t=1700000000,v1:" + mac,               // entry without '='
           "t=1700000000;v1=" + mac,               // wrong separator
           "T=1700000000,V1=" + mac,               // keys are case-sensitive
       }) {
    EXPECT_FALSE(verify(header, kSecret, kPingBody, kTime)) << header;
  }
}

TEST(WebhookSignatureTest, NewSecretIsPrefixedBase64UrlAndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string secret = new_secret();
    ASSERT_EQ(secret.size(), 6u + 43u) << secret;
    EXPECT_EQ(secret.substr(0, 6), "whsec_");
    for (const char c : secret.substr(6)) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << secret;
    }
    seen.insert(secret);
  }
  EXPECT_EQ(seen.size(), 100u);
  const std::string secret = new_secret();
  EXPECT_TRUE(verify(sign(secret, kTime, kPingBody), secret, kPingBody, kTime));
}

}  // namespace
}  // namespace atrium::webhooks
