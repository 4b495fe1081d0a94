// The gateway's API call counts on their own: reported through a recording stand-in for metering, on a ManualClock,
// so every report is exact.
#include "gateway/api_calls.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <vector>

#include "core/clock.hpp"

namespace atrium::gateway {
namespace {

struct SentReport {
  std::string tenant_id;
  std::int64_t calls = 0;
  std::string key;
};

class ApiCallsTest : public ::testing::Test {
 protected:
  Result<void> report(const std::string& tenant_id, std::int64_t calls, const std::string& key) {
    if (down_) return fail(Errc::unavailable, "metering down");
    if (gone_.contains(tenant_id)) return fail(Errc::not_found, "tenant " + tenant_id + " is deleted");
    reports_.push_back({tenant_id, calls, key});
    return {};
  }
  std::map<std::string, std::int64_t> totals() const {
    std::map<std::string, std::int64_t> out;
    for (const auto& r : reports_) out[r.tenant_id] += r.calls;
    return out;
  }

  ManualClock clock_{parse_rfc3339("2026-12-01T00:00:00Z").value()};
  bool down_ = false;
  std::set<std::string> gone_;
  std::vector<SentReport> reports_;
  ApiCallCounter counter_{[this](const std::string& t, std::int64_t calls, Instant, const std::string& key) {
                            return report(t, calls, key);
                          },
                          clock_, std::chrono::hours(1)};
};

TEST_F(ApiCallsTest, AFailedReportIsSentAgainWithTheSameKeyAndCount) {
  counter_.count("t1", 3);
  down_ = true;
  EXPECT_FALSE(counter_.report_now());
  EXPECT_TRUE(reports_.empty());
  down_ = false;
  counter_.count("t1", 2);
  ASSERT_TRUE(counter_.report_now());
  ASSERT_EQ(reports_.size(), 2u) << "the retried report and the new count, each under its own key";
  EXPECT_EQ(totals(), (std::map<std::string, std::int64_t>{{"t1", 5}}));
  EXPECT_NE(reports_[0].key, reports_[1].key);
  ASSERT_TRUE(counter_.report_now());
  EXPECT_EQ(reports_.size(), 2u) << "nothing left to report twice";
}

TEST_F(ApiCallsTest, TheCountsOfATenantThatIsGoneAreDroppedNotKept) {
  counter_.count("t1", 4);
  counter_.count("t2", 1);
  gone_.insert("t1");
  ASSERT_TRUE(counter_.report_now()) << "a tenant that is gone is not an error to report again";
  EXPECT_EQ(totals(), (std::map<std::string, std::int64_t>{{"t2", 1}}));
  gone_.clear();  // the tenant comes back (an import): what it had before is not written into it
  ASSERT_TRUE(counter_.report_now());
  EXPECT_EQ(totals(), (std::map<std::string, std::int64_t>{{"t2", 1}}));
}

}  // namespace
}  // namespace atrium::gateway
