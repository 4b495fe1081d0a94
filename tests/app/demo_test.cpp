// The demo platform (src/app/demo.*, docs/analytics.md, Demo platform): seeded through the real services on a manual
// clock, it is a believable business (paying customers, every kind of MRR movement over time, product events with
// NPS answers) and the same seed builds the same business: equal SaaS and product metrics from two platforms.
#include <gtest/gtest.h>

#include <algorithm>

#include "app/demo.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

const Instant k_until = parse_rfc3339("2026-05-01T00:00:00Z").value();

struct Seeded {
  ManualClock clock{app::demo_start(k_until, 3)};
  std::unique_ptr<TestPlatform> tp;
  app::DemoStats stats;
};

std::unique_ptr<Seeded> seed(std::uint64_t s) {
  auto out = std::make_unique<Seeded>();
  Config config;
  config.tenancy.cache_ttl_ms = 0;
  out->tp = TestPlatform::create(storage::Backend::sqlite, config, &out->clock);
  auto stats = app::seed_demo(out->tp->platform(), out->clock, k_until, {.tenants = 8, .months = 3, .seed = s});
  EXPECT_TRUE(stats) << stats.error().message;
  if (stats) out->stats = *stats;
  return out;
}

Json metrics(Seeded& s) {
  auto m = s.tp->platform().analytics->saas_metrics(
      {.from = app::demo_start(k_until, 3), .to = k_until, .granularity = analytics::Granularity::month});
  EXPECT_TRUE(m) << m.error().message;
  if (!m) return Json();
  Json out = analytics::to_json(*m);
  // Tenant ids differ between two platforms (random UUIDs); their slugs are the seed's.
  for (auto& currency : out["currencies"]) {
    std::vector<std::pair<std::string, std::int64_t>> by_slug;
    for (const auto& t : currency["tenants"]) {
      auto tenant = s.tp->platform().tenants->get(t.value("tenant_id", ""));
      EXPECT_TRUE(tenant) << t.dump();
      by_slug.emplace_back(tenant ? tenant->slug : "", t.value("mrr", std::int64_t{0}));
    }
    std::sort(by_slug.begin(), by_slug.end());
    currency["tenants"] = by_slug;
  }
  return out;
}

TEST(DemoPlatform, TheSameSeedBuildsTheSameBusiness) {
  auto first = seed(7);
  auto second = seed(7);
  EXPECT_EQ(first->stats.tenants, 8);
  EXPECT_EQ(first->stats.billing_runs, 89);  // a run a day: Feb, Mar and Apr 2026 are 28 + 31 + 30 days
  EXPECT_EQ(first->stats.events, second->stats.events);
  EXPECT_EQ(first->stats.subscriptions, second->stats.subscriptions);
  const Json a = metrics(*first);
  EXPECT_EQ(a, metrics(*second));
  ASSERT_EQ(a["currencies"].size(), 1u) << a.dump();
  const Json& usd = a["currencies"][0];
  EXPECT_GT(usd["summary"].value("mrr_end", 0), 0) << usd.dump();
  EXPECT_GT(usd["summary"]["movements"].value("new", 0), 0) << usd.dump();
  EXPECT_GT(first->stats.events, 1000);
  // The clock ends at the demo's last instant.
  EXPECT_EQ(first->clock.now(), k_until);

  // Another seed, another business; seeding twice is refused.
  auto third = seed(8);
  EXPECT_NE(metrics(*third), a);
  auto again = app::seed_demo(first->tp->platform(), first->clock, k_until + std::chrono::days(62),
                              {.tenants = 1, .months = 1, .seed = 1});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_EQ(
      app::seed_demo(first->tp->platform(), first->clock, k_until, {.tenants = 0, .months = 3, .seed = 1}).error().code,
      Errc::invalid_argument);
}

}  // namespace
}  // namespace atrium::test
