// The transactional outbox (src/events/outbox.cpp): an event emitted in a tenant's transaction is published once
// the change commits, never when it rolls back, once per pass, removed after its publisher succeeded, and kept (with
// its tenant's later events, but not other tenants') when the publisher fails. Every isolation level, both backends.
#include "events/outbox.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "core/ids.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::events {
namespace {

using tenancy::TenantTransaction;

class OutboxTest : public test::TwoTenantTest {
 protected:
  void SetUp() override {
    TwoTenantTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    drain();  // tenant.created and the like
    published_.clear();
  }

  // Emits `type` in `tenant`'s transaction; `commit` false rolls the transaction back after the emit.
  Result<void> emit_in(const tenancy::Tenant& tenant, const std::string& type, int n, bool commit = true) {
    auto r = platform().tenant_data->transact(tenant, [&](TenantTransaction& tx) -> Result<void> {
      auto e = emit(tx, clock_, type, Json{{"n", n}});
      if (!e) return std::unexpected(e.error());
      if (!commit) return fail(Errc::conflict, "rolled back on purpose");
      return {};
    });
    if (r) {
      // Own-store tenants keep events in their own outbox until they are carried to the control plane.
      auto moved = move_to_control_plane(*platform().tenant_data, platform().db(), tenant);
      if (!moved) return std::unexpected(moved.error());
    }
    return r;
  }

  // One relay pass with a publisher that records, failing for `failing_tenant`.
  Result<int> relay_once(const std::string& failing_tenant = "") {
    Relay relay(
        platform().tenant_data->platform_database(), clock_,
        [&](const Event& e) -> Result<void> {
          if (e.tenant_id == failing_tenant) return fail(Errc::unavailable, "publisher down");
          published_.push_back(e);
          return {};
        },
        std::chrono::seconds(1));
    return relay.run_once();
  }

  void drain() {
    for (int i = 0; i < 10; ++i) {
      auto n = relay_once();
      ASSERT_TRUE(n) << n.error().message;
      if (*n == 0) return;
    }
  }

  std::vector<int> numbers(const std::string& tenant_id, const std::string& type) const {
    std::vector<int> out;
    for (const auto& e : published_) {
      if (e.tenant_id == tenant_id && e.type == type) out.push_back(e.data.value("n", -1));
    }
    return out;
  }

  std::vector<Event> published_;
};

TEST_P(OutboxTest, ACommittedEventIsPublishedOnceInOrderAndARolledBackOneNever) {
  ASSERT_TRUE(emit_in(a_, "thing.happened", 1));
  ASSERT_FALSE(emit_in(a_, "thing.happened", 2, /*commit=*/false));
  ASSERT_TRUE(emit_in(a_, "thing.happened", 3));
  auto n = relay_once();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(numbers(a_.id, "thing.happened"), (std::vector<int>{1, 3}));
  for (const auto& e : published_) {
    EXPECT_TRUE(is_uuid(e.id)) << e.id;
    EXPECT_EQ(e.created, std::chrono::floor<std::chrono::seconds>(clock_.now()));
    EXPECT_EQ(to_json(e)["type"], "thing.happened");
  }
  auto again = relay_once();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0) << "published events leave the outbox";
  EXPECT_EQ(published_.size(), 2u);
}

TEST_P(OutboxTest, AFailingPublisherHoldsBackItsTenantOnlyAndLosesNothing) {
  ASSERT_TRUE(emit_in(a_, "thing.happened", 1));
  ASSERT_TRUE(emit_in(b_, "thing.happened", 10));
  ASSERT_TRUE(emit_in(a_, "thing.happened", 2));
  auto n = relay_once(/*failing_tenant=*/a_.id);
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_TRUE(numbers(a_.id, "thing.happened").empty());
  EXPECT_EQ(numbers(b_.id, "thing.happened"), std::vector<int>{10}) << "another tenant's event goes on";
  auto later = relay_once();
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(numbers(a_.id, "thing.happened"), (std::vector<int>{1, 2})) << "kept, in order";
  EXPECT_EQ(numbers(b_.id, "thing.happened"), std::vector<int>{10}) << "not twice";
}

INSTANTIATE_TEST_SUITE_P(Isolation, OutboxTest, test::all_isolation_cases(), test::isolation_case_name);

}  // namespace
}  // namespace atrium::events
