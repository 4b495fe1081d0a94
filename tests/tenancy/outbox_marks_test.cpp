// The sweep that carries what an interrupted move left in tenants' own outboxes (Platform::relay_pending_audit)
// visits the tenants marked as having written (tenancy::OutboxMarks), not every tenant: a read-write transaction of
// a tenant with its own database or file marks it, a read-only one does not, and the mark goes once the tenant's
// outboxes were found empty and no write can still be in flight under it. Every isolation level, both backends.
#include "tenancy/outbox_marks.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "audit/audit_log.hpp"
#include "jobs/runner.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::tenancy {
namespace {

using namespace std::chrono_literals;

const audit::Context k_who{.actor_type = audit::ActorType::system, .actor_id = "test"};

class OutboxMarksTest : public test::TwoTenantTest {
 protected:
  std::vector<std::string> marked() {
    auto marks = platform().tenant_data->outbox_marks().list("", 100);
    EXPECT_TRUE(marks) << marks.error().message;
    std::vector<std::string> ids;
    for (const auto& m : marks.value_or(std::vector<OutboxMark>{})) ids.push_back(m.tenant_id);
    return ids;
  }
  bool is_marked(const Tenant& t) { return std::ranges::count(marked(), t.id) == 1; }

  // A change in `t` whose audit entry stays in the tenant's outbox (the process "died" before moving it).
  void change(const Tenant& t, const std::string& action) {
    auto r = platform().tenant_data->transact(t, [&](TenantTransaction& tx) -> Result<void> {
      return platform().audit->append(tx, k_who, {.action = action, .resource_type = "test", .resource_id = "1"});
    });
    ASSERT_TRUE(r) << r.error().message;
  }

  int sweep() {
    auto moved = platform().relay_pending_audit();
    EXPECT_TRUE(moved) << moved.error().message;
    return moved.value_or(-1);
  }
  bool own_store(const Tenant& t) { return !platform().tenant_data->shares_control_plane(t); }
  // `action`'s one entry is in t's chain (carried out of its outbox, or written there at once).
  bool in_chain(const Tenant& t, const std::string& action) {
    auto entries = platform().audit->list({.chain_id = t.id, .action = action, .limit = 10});
    return entries && entries->entries.size() == 1;
  }
  void expect_chain_verifies(const Tenant& t) {
    auto report = platform().audit->verify(t.id);
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_TRUE(report->findings.empty()) << report->findings.front().problem;
  }
};

TEST_P(OutboxMarksTest, TheSweepVisitsOnlyTenantsThatWroteAndForgetsThemOnceEmpty) {
  const bool own = own_store(a_);
  // What setting up the tenants wrote is carried, and its marks go once they are older than the hold.
  clock_.advance(OutboxMarks::k_hold + 1min);
  sweep();
  ASSERT_TRUE(marked().empty());

  // A read-only transaction marks nothing; a change marks its tenant only, when it has its own store.
  ASSERT_TRUE(
      platform().tenant_data->transact(a_, [](TenantTransaction&) -> Result<void> { return {}; }, {.read_only = true}));
  EXPECT_TRUE(marked().empty());
  change(a_, "test.left_in_outbox");
  EXPECT_EQ(is_marked(a_), own);
  EXPECT_FALSE(is_marked(b_));

  // The sweep carries alpha's entry; the fresh mark stays (a write under it may still be committing).
  EXPECT_EQ(sweep(), own ? 1 : 0);
  EXPECT_EQ(is_marked(a_), own);
  EXPECT_EQ(sweep(), 0);

  // Later, with nothing left and nothing written, it goes: the sweep then visits no tenant at all.
  clock_.advance(OutboxMarks::k_hold + 1min);
  EXPECT_EQ(sweep(), 0);
  EXPECT_TRUE(marked().empty());

  // The next change marks alpha again (this process wrote its mark more than k_refresh ago), and it is carried.
  change(a_, "test.after_the_mark_went");
  EXPECT_EQ(is_marked(a_), own);
  EXPECT_EQ(sweep(), own ? 1 : 0);
  auto entries = platform().audit->list({.chain_id = a_.id, .limit = 100});
  ASSERT_TRUE(entries) << entries.error().message;
  EXPECT_EQ(std::ranges::count_if(entries->entries, [](const auto& e) { return e.action.starts_with("test."); }), 2);
  expect_chain_verifies(a_);
}

// A tenant that is deleted loses its mark at the next sweep, whatever its age.
TEST_P(OutboxMarksTest, ADeletedTenantsMarkGoesAtOnce) {
  const bool own = own_store(b_);
  change(b_, "test.before_deletion");
  ASSERT_EQ(is_marked(b_), own);
  ASSERT_TRUE(platform().update_tenant(b_.id, {.status = TenantStatus::deleted}, k_who));
  sweep();
  EXPECT_FALSE(is_marked(b_));
}

// `serve` carries what a crash left after it started, in the background (a start after a bulk creation of tenants
// is not delayed by it); a sweep asked to stop leaves the rest, and its marks, to the next one.
TEST_P(OutboxMarksTest, AtStartTheOutboxesAreCarriedInTheBackground) {
  const bool own = own_store(a_);
  change(a_, "test.left_by_a_crash");
  ASSERT_EQ(is_marked(a_), own);
  auto stopped = platform().relay_pending_audit([] { return true; });
  ASSERT_TRUE(stopped) << stopped.error().message;
  EXPECT_EQ(*stopped, 0);
  EXPECT_EQ(is_marked(a_), own);
  EXPECT_EQ(in_chain(a_, "test.left_by_a_crash"), !own) << "there at once where the store shares the control plane";

  ASSERT_TRUE(platform().start_audit_services());
  EXPECT_TRUE(test::eventually([&] { return in_chain(a_, "test.left_by_a_crash"); }));
  expect_chain_verifies(a_);
}

// The minute's sweep as a job: it stops between tenants once the process drains (the rest waits for the next one,
// so a stop is not held up by a long sweep), and carries everything otherwise.
TEST_P(OutboxMarksTest, TheSweepJobStopsWhenTheProcessDrains) {
  const bool own = own_store(a_);
  change(a_, "test.swept_by_the_job");
  const jobs::Handler* sweep_job = platform().workers()->handlers().find("system.outbox_sweep");
  ASSERT_NE(sweep_job, nullptr);
  jobs::Job job;
  job.id = "01900000-0000-7000-8000-0000000000d1";
  job.type = "system.outbox_sweep";
  platform().draining = true;
  {
    jobs::JobContext ctx(job, platform().db(), platform().clock());
    ASSERT_TRUE((*sweep_job)(ctx));
  }
  EXPECT_EQ(in_chain(a_, "test.swept_by_the_job"), !own);
  EXPECT_EQ(is_marked(a_), own);
  platform().draining = false;
  jobs::JobContext ctx(job, platform().db(), platform().clock());
  ASSERT_TRUE((*sweep_job)(ctx));
  EXPECT_TRUE(in_chain(a_, "test.swept_by_the_job"));
}

INSTANTIATE_TEST_SUITE_P(Levels, OutboxMarksTest, test::all_isolation_cases(), test::isolation_case_name);

}  // namespace
}  // namespace atrium::tenancy
