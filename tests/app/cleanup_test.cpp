// The daily cleanup (app/cleanup.hpp) costs O(tenants with work): it looks into the stores written since its last
// pass less the longest retention, and expires raw usage events only of tenants with usage since its last cutoff —
// yet every expired row still goes, at every isolation level on both backends. (CleanupTest in
// tests/api/webhooks_api_test.cpp checks what each table keeps and loses.)

#include "app/cleanup.hpp"

#include <gtest/gtest.h>

#include "metering/metering.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/store_writes.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::test {
namespace {

using std::chrono::days;
using std::chrono::hours;
using tenancy::TenantTransaction;

class CleanupCost : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == storage::Backend::postgres && !postgres_url(),
                           "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.jobs.idempotency_key_hours = 24;
    config.jobs.retain_reports_days = 1;
    config.webhooks.retain_deliveries_days = 1;
    config.metering.retain_events_days = 35;
    config.metering.max_event_age_hours = 24;
    tp_ = TestPlatform::create(GetParam().backend, config, &clock_);
    ASSERT_TRUE(tp_);
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "bravo", GetParam().isolation);
    ASSERT_FALSE(a_.id.empty());
    ASSERT_FALSE(b_.id.empty());
  }
  app::Platform& platform() { return tp_->platform(); }

  // A stored Idempotency-Key answer made now (a write of the tenant's store).
  void answer(const tenancy::Tenant& t, const std::string& key) {
    ASSERT_TRUE(platform().tenant_data->transact(t, [&](TenantTransaction& tx) {
      return tenancy::store_answer(tx, key, {.operation = "POST /v1/projects", .request_hash = "h", .status = 201},
                                   clock_.now());
    }));
  }
  bool kept(const tenancy::Tenant& t, const std::string& key) {
    bool found = false;
    EXPECT_TRUE(platform().tenant_data->transact(t,
                                                 [&](TenantTransaction& tx) -> Result<void> {
                                                   auto a = tenancy::find_answer(tx, key);
                                                   if (!a) return std::unexpected(a.error());
                                                   found = a->has_value();
                                                   return {};
                                                 },
                                                 {.read_only = true}));
    return found;
  }
  app::CleanupSummary run() {
    auto r = app::clean_up(platform(), clock_);
    EXPECT_TRUE(r) << r.error().message;
    return r.value_or(app::CleanupSummary{});
  }

  ManualClock clock_{parse_rfc3339("2026-12-01T09:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
};

TEST_P(CleanupCost, VisitsOnlyTheStoresWrittenWithinTheLongestRetentionAndStillExpiresEverything) {
  answer(a_, "a-day-0");
  answer(b_, "b-day-0");
  // The first pass has no earlier one to start from: every store ever written.
  auto first = run();
  EXPECT_EQ(first.tenants_visited, 2);
  EXPECT_EQ(first.idempotency_keys, 0);

  // Two days on, only alpha writes. Bravo last wrote within a retention (1 day) of the last pass: still visited,
  // and its answer, now past its 24 hours, goes with alpha's.
  clock_.advance(days(2));
  answer(a_, "a-day-2");
  auto second = run();
  EXPECT_EQ(second.tenants_visited, 2);
  EXPECT_EQ(second.idempotency_keys, 2);
  EXPECT_FALSE(kept(a_, "a-day-0"));
  EXPECT_FALSE(kept(b_, "b-day-0"));
  EXPECT_TRUE(kept(a_, "a-day-2"));

  // Two more days: bravo has written nothing since before the last pass's horizon (the pass's own removals do not
  // count as writes) and is not looked at; alpha is.
  clock_.advance(days(2));
  auto third = run();
  EXPECT_EQ(third.tenants_visited, 1);
  EXPECT_EQ(third.idempotency_keys, 1);
  EXPECT_FALSE(kept(a_, "a-day-2"));
  // Nothing has been written since: a pass right after looks at nobody.
  auto fourth = run();
  EXPECT_EQ(fourth.tenants_visited, 0);
  EXPECT_EQ(fourth.idempotency_keys, 0);
}

// A store written shortly before a pass holds rows that pass must leave (not yet expired): the next passes look
// back far enough to find it again once they have.
TEST_P(CleanupCost, AStoreWrittenJustBeforeAPassIsVisitedAgainOnceItsRowsExpire) {
  run();
  clock_.advance(hours(12));
  answer(b_, "b-half-day");
  clock_.advance(hours(12));
  auto keeps = run();
  EXPECT_EQ(keeps.idempotency_keys, 0);  // 12 hours old: within its 24
  EXPECT_TRUE(kept(b_, "b-half-day"));
  clock_.advance(days(1));
  auto expires = run();
  EXPECT_EQ(expires.tenants_visited, 1);
  EXPECT_EQ(expires.idempotency_keys, 1);
  EXPECT_FALSE(kept(b_, "b-half-day"));
}

// A pass that did not complete (or did not run) widens the next one instead of losing what it would have done.
TEST_P(CleanupCost, APassThatDidNotRunLeavesNothingBehind) {
  answer(a_, "a-day-0");
  run();
  answer(b_, "b-day-0");
  // No pass for ten days.
  clock_.advance(days(10));
  auto late = run();
  EXPECT_EQ(late.tenants_visited, 2);
  EXPECT_EQ(late.idempotency_keys, 2);
  EXPECT_FALSE(kept(a_, "a-day-0"));
  EXPECT_FALSE(kept(b_, "b-day-0"));
}

TEST_P(CleanupCost, RawUsageEventsOfTenantsWithUsageSinceTheLastCutoffGoAfterTheirRetention) {
  metering::UsageBatch batch;
  for (int i = 0; i < 3; ++i) {
    batch.push_back({.event = metering::UsageEvent{.idempotency_key = "u-" + std::to_string(i),
                                                   .metric = "storage",
                                                   .quantity = 1,
                                                   .timestamp = clock_.now() - std::chrono::minutes(i)},
                     .unreadable = {}});
  }
  ASSERT_EQ(platform().metering->ingest(a_.id, std::move(batch))->accepted, 3);
  const auto usage = [&] {
    return platform().metering->aggregate(a_.id, "storage", metering::Aggregation::count, clock_.now() - days(400),
                                          clock_.now() + days(1));
  };
  auto first = run();
  EXPECT_EQ(first.usage_tenants, 0);  // nothing of anyone is 35 days old yet
  clock_.advance(days(20));
  EXPECT_EQ(run().usage_tenants, 0);
  clock_.advance(days(16));  // 36 days after the events
  auto expiring = run();
  EXPECT_EQ(expiring.usage_tenants, 1);  // alpha alone: bravo never had usage
  EXPECT_EQ(expiring.usage_events, 3);
  // The raw events are gone; their hourly roll-ups stay, so a count over the whole range still sees them.
  EXPECT_EQ(usage().value_or(-1), 3);
  clock_.advance(days(1));
  EXPECT_EQ(run().usage_tenants, 0);  // alpha's usage hour is before the last cutoff now
}

// TenantData::run (the pipelined writes of the API) notes the write as transact does.
TEST_P(CleanupCost, EveryKindOfWriteNotesTheStore) {
  auto& writes = platform().tenant_data->store_writes();
  clock_.advance(hours(1));  // past whatever creating the tenants wrote
  const Instant before = clock_.now();
  EXPECT_TRUE(writes.written_since(before, "", 10)->empty());
  constexpr tenancy::TenantStatement put{
      "test_cleanup_put",
      "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status, response_body, "
      "created_at) VALUES ($1, 'k', 'POST /v1/projects', 'h', 201, '{}', '2026-12-01T09:00:00.000Z')"};
  const std::vector<tenancy::TenantBoundStatement> statements{{put, {}}};
  ASSERT_TRUE(platform().tenant_data->run(a_, statements));
  EXPECT_EQ(*writes.written_since(before, "", 10), std::vector<std::string>{a_.id});
  // A read notes nothing.
  clock_.advance(days(1));
  const Instant later = clock_.now();
  EXPECT_FALSE(kept(b_, "nothing"));
  EXPECT_TRUE(writes.written_since(later, "", 10)->empty());
}

INSTANTIATE_TEST_SUITE_P(Levels, CleanupCost, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
