// The properties of usage and product events, encrypted at rest for a tenant that opts in (settings
// encryption.event_properties; docs/data-protection.md): stored sealed, read the same by every reader (usage
// summaries with filters, groups and unique counts, product metrics, churn features), left alone for a tenant that
// did not opt in, and sealed or re-sealed by re-encryption — at every isolation level on both backends.

#include <gtest/gtest.h>

#include "analytics/analytics.hpp"
#include "analytics/product_events.hpp"
#include "churn/features.hpp"
#include "metering/metering.hpp"
#include "protection/keyring.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using metering::Aggregation;
using metering::SummaryQuery;
using metering::UsageBatch;
using metering::UsageEntry;
using metering::UsageEvent;
using storage::Value;
using tenancy::TenantTransaction;

const audit::Context k_settings_admin{.actor_type = audit::ActorType::system, .actor_id = "test"};

class EventPropertiesAtRest : public TwoTenantTest {
 protected:
  void opt_in(tenancy::Tenant& t, bool on) {
    tenancy::TenantSettings s = t.settings;
    s.encrypt_event_properties = on;
    auto updated = platform().update_tenant(t.id, {.settings = s}, k_settings_admin);
    ASSERT_TRUE(updated) << updated.error().message;
    t = *updated;
  }

  // `n` usage events of metric "storage" for `t`, keyed "<prefix>-<i>", with a region and a user property.
  void ingest_usage(const tenancy::Tenant& t, const std::string& prefix, int n, const std::string& region) {
    for (int first = 0; first < n; first += 500) {  // batches of at most 500 (the limit is 1,000)
      UsageBatch batch;
      for (int i = first; i < std::min(n, first + 500); ++i) {
        Json properties{{"region", i % 2 == 0 ? region : "elsewhere"}, {"user", "u" + std::to_string(i % 4)}};
        batch.push_back(UsageEntry{.event = UsageEvent{.idempotency_key = prefix + "-" + std::to_string(i),
                                                       .metric = "storage",
                                                       .quantity = 1 + i % 3,
                                                       .timestamp = clock_.now() - std::chrono::minutes(1 + i % 50),
                                                       .properties = properties.dump()},
                                   .unreadable = {}});
      }
      const auto size = static_cast<std::int64_t>(batch.size());
      auto r = platform().metering->ingest(t.id, std::move(batch));
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(r->accepted, size);
    }
  }

  // A feature.used and a page.viewed (the cancellation page) product event of one user.
  Result<metering::IngestResult> ingest_product_events(const tenancy::Tenant& t, const std::string& feature) {
    UsageBatch batch;
    const auto event = [&](std::string_view type, std::string key, Json properties) {
      batch.push_back(UsageEntry{.event = UsageEvent{.idempotency_key = std::move(key),
                                                     .metric = analytics::event_metric(type),
                                                     .quantity = 1,
                                                     .timestamp = clock_.now() - std::chrono::hours(2),
                                                     .properties = properties.dump(),
                                                     .user_id = "user-1"},
                                 .unreadable = {}});
    };
    event(analytics::k_feature_used, "f-1", {{"feature", feature}});
    event(analytics::k_page_viewed, "p-1", {{"page", "cancel"}});
    return platform().analytics->ingest(t.id, std::move(batch));
  }

  // The properties column as stored: (idempotency key, properties) in key order.
  std::vector<std::pair<std::string, std::string>> stored(const tenancy::Tenant& t) {
    std::vector<std::pair<std::string, std::string>> out;
    auto r = platform().tenant_data->transact_control_plane(t.id, [&](TenantTransaction& tx) -> Result<void> {
      auto rs = tx.execute({"test_event_properties",
                            "SELECT idempotency_key, properties FROM usage_events WHERE tenant_id = $1 ORDER BY 1"});
      if (!rs) return std::unexpected(rs.error());
      out.clear();
      for (std::size_t i = 0; i < rs->rows.size(); ++i) out.emplace_back(*rs->text_at(i, 0), *rs->text_at(i, 1));
      return {};
    });
    EXPECT_TRUE(r) << r.error().message;
    return out;
  }

  // The usage summaries every reader of properties goes through: grouped by region, filtered on it, and a unique
  // count of users.
  std::vector<std::string> summaries(const tenancy::Tenant& t) {
    std::vector<std::string> out;
    const Instant from = clock_.now() - std::chrono::hours(1);
    const Instant to = clock_.now();
    for (SummaryQuery q :
         {SummaryQuery{.metric = "storage", .from = from, .to = to, .group_by = "region"},
          SummaryQuery{.metric = "storage", .filters = {{"region", Json("elsewhere")}}, .from = from, .to = to},
          SummaryQuery{.metric = "storage",
          .aggregation = Aggregation::unique_count,
          .property = "user",
          .from = from,
          .to = to}}) {
      auto rows = platform().metering->summarize(t.id, q);
      EXPECT_TRUE(rows) << rows.error().message;
      if (!rows) continue;
      for (const auto& row : *rows) {
        out.push_back((row.group ? row.group->dump() : "-") + "=" + std::to_string(row.value.value_or(-1)));
      }
    }
    return out;
  }

  churn::Features churn_features(const tenancy::Tenant& t) {
    // A cutoff after the events were received (they count only once Atrium knew them).
    auto rows = churn::observe(*platform().tenant_data, {}, clock_.now() + std::chrono::minutes(1), {}, t.id);
    EXPECT_TRUE(rows) << rows.error().message;
    return rows && rows->size() == 1 ? rows->front().values : churn::Features{};
  }

  std::vector<std::string> adopted_features(const tenancy::Tenant& t) {
    const Instant today = std::chrono::floor<std::chrono::days>(clock_.now());
    auto m = platform().analytics->product_metrics(
        t.id, {.from = today - std::chrono::days(1), .to = today + std::chrono::days(1)});
    EXPECT_TRUE(m) << m.error().message;
    std::vector<std::string> out;
    if (m) {
      for (const auto& f : m->feature_adoption) out.push_back(f.feature + ":" + std::to_string(f.users));
    }
    return out;
  }
};

TEST_P(EventPropertiesAtRest, ATenantThatOptsInHasItsPropertiesSealedAndEveryReaderGetsThemBack) {
  opt_in(a_, true);
  EXPECT_TRUE(a_.settings.encrypt_event_properties);
  EXPECT_FALSE(b_.settings.encrypt_event_properties);
  ingest_usage(a_, "a", 40, "qzx-alpha-region");
  ingest_usage(b_, "b", 40, "qzx-bravo-region");
  for (auto* t : {&a_, &b_}) {
    auto r = ingest_product_events(*t, t == &a_ ? "qzx-alpha-feature" : "qzx-bravo-feature");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->accepted, 2);
  }

  // Stored: alpha's sealed, each bound to its event; bravo's (not opted in) as sent.
  const auto a_rows = stored(a_);
  ASSERT_EQ(a_rows.size(), 42U);
  for (const auto& [key, value] : a_rows) {
    EXPECT_TRUE(value.starts_with("enc1:")) << key << ": " << value;
    EXPECT_EQ(value.find("qzx"), std::string::npos);
  }
  const auto b_rows = stored(b_);
  ASSERT_EQ(b_rows.size(), 42U);
  for (const auto& [key, value] : b_rows) EXPECT_TRUE(value.starts_with("{")) << key << ": " << value;

  // Read back the same way for both: the same shape of answers, each with its own values.
  const auto a_summaries = summaries(a_);
  const auto b_summaries = summaries(b_);
  ASSERT_EQ(a_summaries.size(), 4U);              // two regions, one filtered total, one unique count
  EXPECT_EQ(a_summaries[0], "\"elsewhere\"=39");  // odd i: quantities 1 + i % 3
  EXPECT_EQ(a_summaries[1], "\"qzx-alpha-region\"=40");
  EXPECT_EQ(a_summaries[2], "-=39");
  EXPECT_EQ(a_summaries[3], "-=4");
  EXPECT_EQ(b_summaries[0], a_summaries[0]);
  EXPECT_EQ(b_summaries[1], "\"qzx-bravo-region\"=40");
  EXPECT_EQ(b_summaries[2], a_summaries[2]);
  EXPECT_EQ(b_summaries[3], a_summaries[3]);
  EXPECT_EQ(adopted_features(a_), std::vector<std::string>{"qzx-alpha-feature:1"});
  EXPECT_EQ(adopted_features(b_), std::vector<std::string>{"qzx-bravo-feature:1"});
  const auto a_churn = churn_features(a_);
  const auto b_churn = churn_features(b_);
  EXPECT_EQ(a_churn[9], 1.0F);  // cancellation_page_visits
  EXPECT_EQ(b_churn[9], 1.0F);
  EXPECT_EQ(a_churn[3], b_churn[3]);  // feature_adoption_rate

  // A retried batch is still a duplicate (the key decides, not the sealed text, which differs at every seal).
  auto retried = ingest_product_events(a_, "qzx-alpha-feature");
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->accepted, 0);
  EXPECT_EQ(retried->duplicates, 2);
  EXPECT_EQ(stored(a_).size(), 42U);
}

TEST_P(EventPropertiesAtRest, SealedPropertiesMovedToAnotherEventOrTenantFailToOpen) {
  opt_in(a_, true);
  opt_in(b_, true);
  ingest_usage(a_, "a", 2, "qzx-alpha-region");
  ingest_usage(b_, "b", 2, "qzx-bravo-region");
  const auto a_rows = stored(a_);
  const auto b_rows = stored(b_);
  ASSERT_EQ(a_rows.size(), 2U);
  const auto move = [&](const tenancy::Tenant& t, const std::string& key, const std::string& value) {
    ASSERT_TRUE(platform().tenant_data->transact_control_plane(t.id, [&](TenantTransaction& tx) -> Result<void> {
      auto up = tx.execute({"test_event_properties_set",
                            "UPDATE usage_events SET properties = $3 WHERE tenant_id = $1 AND idempotency_key = $2"},
                           {Value(key), Value(value)});
      EXPECT_EQ(up->affected_rows, 1);
      return {};
    }));
  };
  // Another event of the same tenant: refused with the field named, not read as some other event's properties.
  move(a_, a_rows[0].first, a_rows[1].second);
  auto moved = platform().metering->summarize(
      a_.id,
      {.metric = "storage", .from = clock_.now() - std::chrono::hours(1), .to = clock_.now(), .group_by = "region"});
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().message.find("usage_events.properties"), std::string::npos) << moved.error().message;
  // Another tenant's.
  move(b_, b_rows[0].first, a_rows[1].second);
  EXPECT_FALSE(platform().metering->summarize(
      b_.id,
      {.metric = "storage", .from = clock_.now() - std::chrono::hours(1), .to = clock_.now(), .group_by = "region"}));
}

// Re-encryption (`atrium keys reencrypt`, and the second half of a data-key rotation): an opted-in tenant's events
// stored before it opted in are sealed; a tenant that did not opt in keeps its plaintext; sealed values move to the
// active data key, page after page (more events than one page of 1,000).
TEST_P(EventPropertiesAtRest, ReencryptionSealsOnlyWhatTheTenantOptedIntoAndMovesEverythingToTheActiveKey) {
  ingest_usage(a_, "a", 1'100, "qzx-alpha-region");
  ingest_usage(b_, "b", 3, "qzx-bravo-region");
  for (const auto& [key, value] : stored(a_)) ASSERT_TRUE(value.starts_with("{")) << key;
  const auto before = summaries(a_);

  opt_in(a_, true);
  auto& keyring = *platform().keyring;
  auto pass = protection::reencrypt(*platform().tenant_data, keyring, a_, metering::Metering::sealed_columns());
  ASSERT_TRUE(pass) << pass.error().message;
  EXPECT_EQ(pass->examined, 1'100);
  EXPECT_EQ(pass->resealed, 1'100);
  for (const auto& [key, value] : stored(a_)) ASSERT_TRUE(value.starts_with("enc1:1:")) << key;
  EXPECT_EQ(summaries(a_), before);
  auto b_pass = protection::reencrypt(*platform().tenant_data, keyring, b_, metering::Metering::sealed_columns());
  ASSERT_TRUE(b_pass) << b_pass.error().message;
  EXPECT_EQ(b_pass->resealed, 0);
  for (const auto& [key, value] : stored(b_)) EXPECT_TRUE(value.starts_with("{")) << key;

  // Opting out again: new events are stored as sent, the sealed ones still read, and a rotation re-seals them.
  opt_in(a_, false);
  ingest_usage(a_, "late", 2, "qzx-alpha-region");
  ASSERT_EQ(keyring.rotate_data_key(a_.id).value(), 2);
  auto rotated = protection::reencrypt(*platform().tenant_data, keyring, a_, app::Platform::sealed_columns());
  ASSERT_TRUE(rotated) << rotated.error().message;
  int sealed = 0;
  for (const auto& [key, value] : stored(a_)) {
    if (key.starts_with("late-")) {
      EXPECT_TRUE(value.starts_with("{")) << key;
    } else {
      EXPECT_TRUE(value.starts_with("enc1:2:")) << key << ": " << value.substr(0, 8);
      ++sealed;
    }
  }
  EXPECT_EQ(sealed, 1'100);
  EXPECT_EQ(summaries(a_).size(), before.size());
}

INSTANTIATE_TEST_SUITE_P(Levels, EventPropertiesAtRest, all_isolation_cases(), isolation_case_name);

// The setting itself: off by default, validated, and in the settings' JSON form.
TEST(EventPropertiesSetting, IsOffByDefaultAndTakesOnlyABoolean) {
  const tenancy::TenantSettings defaults;
  EXPECT_FALSE(defaults.encrypt_event_properties);
  EXPECT_EQ(to_json(defaults)["encryption"]["event_properties"], false);
  auto on = tenancy::patch_settings(defaults, Json::parse(R"({"encryption": {"event_properties": true}})"));
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_TRUE(on->encrypt_event_properties);
  EXPECT_TRUE(tenancy::settings_from_json(to_json(*on)).encrypt_event_properties);
  auto reset = tenancy::patch_settings(*on, Json::parse(R"({"encryption": null})"));
  ASSERT_TRUE(reset);
  EXPECT_FALSE(reset->encrypt_event_properties);
  for (const char* bad : {R"({"encryption": {"event_properties": "yes"}})", R"({"encryption": {"other": true}})",
                          R"({"encryption": true})"}) {
    auto r = tenancy::patch_settings(defaults, Json::parse(bad));
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("encryption"), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace atrium::test
