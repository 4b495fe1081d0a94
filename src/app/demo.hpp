#pragma once

// The demo platform (docs/analytics.md, Demo platform): `atrium demo seed` builds a believable SaaS business through
// the real services on a manual clock that walks day by day from `months` ago to today: plans and a price change,
// sign-ups with trials, upgrades, downgrades and seat changes, failed payments and dunning, cancellations (with a
// visit to the cancel page before most), reactivations, API usage, product events and NPS answers. The same seed
// gives the same business: the same tenants, plans, subscriptions, usage and events on the same days, so the same
// metrics (ids differ).

#include <cstdint>
#include <functional>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace atrium::app {

class Platform;

struct DemoOptions {
  int tenants = 50;        // 1-10,000
  int months = 12;         // 1-36
  std::uint64_t seed = 1;  // the random generator's seed
  std::function<void(std::int64_t days_done, std::int64_t days)> progress;
};

struct DemoStats {
  std::int64_t tenants = 0;
  std::int64_t subscriptions = 0;
  std::int64_t events = 0;  // product and usage events
  std::int64_t billing_runs = 0;
};

// Seeds `platform`, which must have been opened on `clock` and be empty of demo data (conflict when the demo plans
// exist already). `clock` starts `options.months` calendar months before `until` (midnight UTC) and ends at `until`.
// invalid_argument for options out of range.
Result<DemoStats> seed_demo(Platform& platform, ManualClock& clock, Instant until, const DemoOptions& options);

// The first instant of the demo for `until` and `months`: the first day of the month `months` before until's.
Instant demo_start(Instant until, int months);

}  // namespace atrium::app
