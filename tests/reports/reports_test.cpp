// Reports (src/reports/reports.cpp): the request check, RFC 4180 fields that a spreadsheet cannot run as formulas,
// and the tenant-scoped store's lifecycle (pending, then ready once or failed; expiry), with another tenant seeing
// none of it. Every isolation level, both backends.
#include "reports/reports.hpp"

#include <gtest/gtest.h>

#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::reports {
namespace {

using tenancy::TenantTransaction;

TEST(ReportFields, QuotedWhenNeededAndNeverAFormula) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
  for (const std::string lead : {"+", "-", "@", "\t", "\r"}) {
    const std::string out = csv_field(lead + "1");
    EXPECT_EQ(out.substr(0, 2), "\"'") << "a cell starting with " << static_cast<int>(lead[0]) << ": " << out;
  }
  EXPECT_EQ(csv_field("1-2"), "1-2") << "only a leading sign is a formula";
}

TEST(ReportRequests, AnAuditLogOverAValidRangeAndNothingElse) {
  auto ok = validate_request(
      Json{{"type", "audit_log"}, {"from", "2026-01-01T00:00:00+01:00"}, {"to", "2026-02-01T00:00:00Z"}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ((*ok)["from"], "2025-12-31T23:00:00.000Z") << "normalised to UTC";
  EXPECT_EQ((*ok)["to"], "2026-02-01T00:00:00.000Z");
  const Json bad[] = {
      Json::array(),
      Json{{"type", "usage"}, {"from", "2026-01-01T00:00:00Z"}, {"to", "2026-02-01T00:00:00Z"}},
      Json{{"type", "audit_log"}, {"from", "2026-01-01"}, {"to", "2026-02-01T00:00:00Z"}},
      Json{{"type", "audit_log"}, {"to", "2026-02-01T00:00:00Z"}},
      Json{{"type", "audit_log"}, {"from", "2026-02-01T00:00:00Z"}, {"to", "2026-02-01T00:00:00Z"}},
      Json{{"type", "audit_log"}, {"from", "2026-01-01T00:00:00Z"}, {"to", "2026-02-01T00:00:00Z"}, {"x", 1}},
  };
  for (const Json& body : bad) {
    auto r = validate_request(body);
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << body.dump();
  }
}

class ReportStoreTest : public test::TwoTenantTest {
 protected:
  Result<void> in(const tenancy::Tenant& tenant, const std::function<Result<void>(TenantTransaction&)>& body) {
    return tp_->platform().tenant_data->transact(tenant, body);
  }

  Report create() {
    Report out;
    auto r = in(a_, [&](TenantTransaction& tx) -> Result<void> {
      auto created = store::create(tx, clock_, "audit_log", Json{{"from", "a"}, {"to", "b"}});
      if (!created) return std::unexpected(created.error());
      out = *created;
      return {};
    });
    EXPECT_TRUE(r) << r.error().message;
    return out;
  }
};

TEST_P(ReportStoreTest, PendingThenReadyOnceWithItsContent) {
  const Report report = create();
  EXPECT_EQ(report.status, "pending");
  EXPECT_EQ(report.type, "audit_log");
  clock_.advance(std::chrono::seconds(5));
  std::vector<bool> finished;
  for (const char* csv : {"id\n1\n", "id\n2\n"}) {
    ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
      auto f = store::finish(tx, clock_, report.id, csv, 1);
      if (!f) return std::unexpected(f.error());
      finished.push_back(*f);
      return {};
    }));
  }
  EXPECT_EQ(finished, (std::vector<bool>{true, false})) << "the second run finds it finished";
  ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto got = store::get(tx, report.id);
    if (!got) return std::unexpected(got.error());
    EXPECT_EQ(got->status, "ready");
    EXPECT_EQ(got->row_count, 1);
    EXPECT_TRUE(got->completed_at.has_value());
    auto csv = store::content(tx, report.id);
    if (!csv) return std::unexpected(csv.error());
    EXPECT_EQ(*csv, "id\n1\n");
    return {};
  }));
}

TEST_P(ReportStoreTest, AFailedReportSaysWhyAndOldReportsExpire) {
  const Report report = create();
  ASSERT_TRUE(
      in(a_, [&](TenantTransaction& tx) { return store::fail_report(tx, clock_, report.id, "too many rows"); }));
  ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto got = store::get(tx, report.id);
    if (!got) return std::unexpected(got.error());
    EXPECT_EQ(got->status, "failed");
    EXPECT_EQ(got->error, "too many rows");
    EXPECT_FALSE(store::content(tx, report.id)) << "a failed report has no content";
    return {};
  }));
  std::int64_t expired = -1;
  ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto n = store::expire(tx, clock_.now());  // created at this very instant, so not before it
    if (!n) return std::unexpected(n.error());
    expired = *n;
    return {};
  }));
  EXPECT_EQ(expired, 0);
  ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto n = store::expire(tx, clock_.now() + std::chrono::seconds(1));
    if (!n) return std::unexpected(n.error());
    expired = *n;
    return {};
  }));
  EXPECT_EQ(expired, 1);
}

TEST_P(ReportStoreTest, AnotherTenantCannotReadOrFinishIt) {
  const Report report = create();
  auto r = in(b_, [&](TenantTransaction& tx) -> Result<void> {
    auto got = store::get(tx, report.id);
    EXPECT_FALSE(got);
    if (!got) {
      EXPECT_EQ(got.error().code, Errc::not_found);
    }
    auto finished = store::finish(tx, clock_, report.id, "stolen", 1);
    EXPECT_TRUE(!finished || !*finished) << "nothing of alpha's is finished from bravo";
    auto n = store::expire(tx, clock_.now() + std::chrono::hours(1));
    EXPECT_TRUE(n && *n == 0) << "bravo's expiry deletes none of alpha's";
    return {};
  });
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(in(a_, [&](TenantTransaction& tx) -> Result<void> {
    auto got = store::get(tx, report.id);
    if (!got) return std::unexpected(got.error());
    EXPECT_EQ(got->status, "pending");
    return {};
  }));
}

INSTANTIATE_TEST_SUITE_P(Isolation, ReportStoreTest, test::all_isolation_cases(), test::isolation_case_name);

}  // namespace
}  // namespace atrium::reports
