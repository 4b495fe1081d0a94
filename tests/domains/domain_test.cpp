#include "domains/domain.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "core/clock.hpp"
#include "domains/certificates.hpp"
#include "domains/dns.hpp"
#include "domains/txt_answer.hpp"
#include "support/dns_server.hpp"
#include "support/test_certificates.hpp"
#include "support/test_support.hpp"

namespace atrium::domains {
namespace {

TEST(CustomDomainNames, HostNamesAreNormalisedAndAnythingElseRefused) {
  EXPECT_EQ(normalize_hostname("App.Customer.TEST."), "app.customer.test");
  EXPECT_EQ(normalize_hostname("a-b.c1.example"), "a-b.c1.example");
  EXPECT_EQ(normalize_hostname("xn--bcher-kva.example"), "xn--bcher-kva.example");
  for (const char* bad : {"", ".", "localhost", "api.localhost", "example", "10.0.0.1", "1.2.3.4.5", "-a.example",
                          "a-.example", "a..example", "a_b.example", "a b.example", "app.example.test:443",
                          "*.example.test", "https://app.example.test"}) {
    EXPECT_FALSE(normalize_hostname(bad)) << bad;
  }
  EXPECT_FALSE(normalize_hostname(std::string(64, 'a') + ".example"));
  EXPECT_TRUE(normalize_hostname(std::string(63, 'a') + ".example"));
}

TEST(CustomDomainNames, TheHostHeaderLosesItsPortCaseAndTrailingDot) {
  EXPECT_EQ(host_of("App.Customer.test:8443"), "app.customer.test");
  EXPECT_EQ(host_of("app.customer.test."), "app.customer.test");
  EXPECT_EQ(host_of("app.customer.test"), "app.customer.test");
  EXPECT_EQ(host_of("127.0.0.1:8080"), "");
  EXPECT_EQ(host_of("app customer.test"), "") << "characters no host name has";
  EXPECT_EQ(host_of("app.customer.test.."), "");
  EXPECT_EQ(host_of("app_x.customer.test"), "");
  EXPECT_EQ(host_of("[::1]:8080"), "");
  EXPECT_EQ(host_of(""), "");
}

TEST(CustomDomainNames, TheChallengeIsATxtRecordUnderTheName) {
  Domain d;
  d.hostname = "app.customer.test";
  d.verification_token = "tok";
  const Json j = to_json(d);
  EXPECT_EQ(j["verification"], Json({{"type", "TXT"},
                                     {"name", "_atrium-challenge.app.customer.test"},
                                     {"value", "atrium-domain-verification=tok"}}));
  EXPECT_EQ(j["status"], "pending");
  EXPECT_TRUE(j["certificate"].is_null());
  EXPECT_TRUE(j["verified_at"].is_null());
}

TEST(CustomDomainCertificates, AMatchingCertificateIsDescribed) {
  const auto c = test::make_test_certificate("app.customer.test");
  auto info =
      check_certificate(c.certificate_pem, c.private_key_pem, "app.customer.test", SystemClock::instance().now());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->subject, "CN=app.customer.test");
  EXPECT_EQ(info->fingerprint_sha256.size(), 64u);
  const auto left = info->not_after - SystemClock::instance().now();
  EXPECT_GT(left, std::chrono::hours(23));
  EXPECT_LT(left, std::chrono::hours(25));
}

TEST(CustomDomainCertificates, EachBrokenPartIsRefusedWithItsReason) {
  const auto now = SystemClock::instance().now();
  const auto c = test::make_test_certificate("app.customer.test");
  const auto other = test::make_test_certificate("app.customer.test");
  auto message = [&](std::string_view chain, std::string_view key, std::string_view host) {
    auto r = check_certificate(chain, key, host, now);
    EXPECT_FALSE(r);
    return r ? std::string() : r.error().message;
  };
  EXPECT_NE(message("not a certificate", c.private_key_pem, "app.customer.test").find("PEM certificate"),
            std::string::npos);
  EXPECT_NE(message(c.certificate_pem, "not a key", "app.customer.test").find("private key"), std::string::npos);
  EXPECT_NE(message(c.certificate_pem, other.private_key_pem, "app.customer.test").find("does not belong"),
            std::string::npos);
  EXPECT_NE(message(c.certificate_pem, c.private_key_pem, "www.customer.test").find("does not name"),
            std::string::npos);
  const auto expired = test::make_test_certificate("app.customer.test", -7200, -3600);
  EXPECT_NE(message(expired.certificate_pem, expired.private_key_pem, "app.customer.test").find("expired"),
            std::string::npos);
  EXPECT_NE(message(std::string(70 * 1024, 'x'), c.private_key_pem, "app.customer.test").find("64 KiB"),
            std::string::npos);
}

TEST(DnsTxtLookup, TheSystemResolverAsksTheConfiguredServer) {
  auto dns = test::DnsServer::start("customer.test", {{"_atrium-challenge.app.customer.test", "one"},
                                                      {"_atrium-challenge.app.customer.test", "two"},
                                                      {"other.customer.test", "three"}});
  ATRIUM_MISSING_SERVICE(dns == nullptr, "dnsmasq (/usr/sbin/dnsmasq, package dnsmasq-base)");
  auto resolver = system_resolver(dns->address());
  ASSERT_TRUE(resolver) << resolver.error().message;
  auto found = (*resolver)->txt("_atrium-challenge.app.customer.test");
  ASSERT_TRUE(found) << found.error().message;
  std::sort(found->begin(), found->end());
  EXPECT_EQ(*found, (std::vector<std::string>{"one", "two"}));
  // A name without records (NXDOMAIN) has none; a name the server refuses is no answer at all.
  auto none = (*resolver)->txt("_atrium-challenge.www.customer.test");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty());
  auto refused = (*resolver)->txt("_atrium-challenge.app.elsewhere.example");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::unavailable);
}

// A DNS answer message for `_atrium-challenge.x.test`: header, the question, then each record as given.
std::vector<unsigned char> dns_message(const std::vector<std::pair<int, std::string>>& answers) {
  std::vector<unsigned char> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, static_cast<unsigned char>(answers.size()),
                                  0,    0,    0,    0};
  for (const char* label : {"_atrium-challenge", "x", "test"}) {
    m.push_back(static_cast<unsigned char>(std::strlen(label)));
    m.insert(m.end(), label, label + std::strlen(label));
  }
  m.insert(m.end(), {0, 0, 16, 0, 1});
  for (const auto& [type, rdata] : answers) {
    m.insert(m.end(), {0xc0, 0x0c, 0, static_cast<unsigned char>(type), 0, 1, 0, 0, 0, 60, 0,
                       static_cast<unsigned char>(rdata.size())});
    m.insert(m.end(), rdata.begin(), rdata.end());
  }
  return m;
}

TEST(DnsTxtLookup, AnswersAreReadRecordByRecordAndMalformedOnesRefused) {
  const auto ok = dns_message(
      {{16, std::string("\x03one\x03two", 8)}, {5, std::string("\x01y\x00", 3)}, {16, std::string("\x04last", 5)}});
  auto records = txt_records(ok.data(), static_cast<int>(ok.size()));
  ASSERT_TRUE(records);
  EXPECT_EQ(*records, (std::vector<std::string>{"onetwo", "last"})) << "strings joined, the CNAME skipped";
  // A character-string longer than its record, a record longer than the message, a cut header: no answer.
  const auto overlong = dns_message({{16, std::string("\x09short", 6)}});
  EXPECT_FALSE(txt_records(overlong.data(), static_cast<int>(overlong.size())));
  auto cut = ok;
  cut.resize(cut.size() - 3);
  EXPECT_FALSE(txt_records(cut.data(), static_cast<int>(cut.size())));
  EXPECT_FALSE(txt_records(ok.data(), 5));
  EXPECT_FALSE(txt_records(nullptr, 0));
}

TEST(DnsTxtLookup, AServerThatIsNotAnAddressIsRefused) {
  for (const char* bad : {"dns.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:53x", "::1"}) {
    auto r = system_resolver(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << bad;
  }
  EXPECT_TRUE(system_resolver(""));
  EXPECT_TRUE(system_resolver("127.0.0.1"));
}

}  // namespace
}  // namespace atrium::domains
