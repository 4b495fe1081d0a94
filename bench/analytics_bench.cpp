// Analytics over the demo platform (docs/performance.md, Analytics): `atrium demo seed` builds N tenants over M months
// on a fresh database (SQLite in a temp directory, or a scratch PostgreSQL database), then
//   etl        a full warehouse ETL run (atrium analytics etl --full): source rows read per second, end to end;
//   copy       its baseline in the same run: the same source rows copied by plain INSERT ... SELECT statements
//              inside the control-plane database (the ETL's own SELECTs over the whole range, into scratch tables);
//   saas       GET /v1/admin/analytics/saas over the whole range by month (MRR, movements, churn, cohorts; below
//              HTTP): p50 and p99 of Q runs, and ledger rows per second;
//   dashboard  a tenant's product metrics over 30 days (GET /v1/analytics/dashboard's historical part) for the
//              tenant with the most events: p50 and p99 of Q runs.
//
// Usage: atrium_analytics_bench [--tenants N (1000)] [--months M (24)] [--seed S (1)] [--queries Q (50)]
//                               [--chunk-days D (31, as atrium serve)] [--database-url postgresql://...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "analytics/analytics.hpp"
#include "app/demo.hpp"
#include "app/platform.hpp"
#include "scratch.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"
#include "warehouse/warehouse.hpp"

namespace {

using namespace atrium;
using Steady = std::chrono::steady_clock;

// The baseline: the ETL's source SELECTs (src/warehouse/sql.hpp) over every day, copied by INSERT ... SELECT.
constexpr storage::Statement k_copy_tables{
    "",
    "CREATE TABLE bench_usage (tenant_id TEXT, metric TEXT, day BIGINT, quantity BIGINT, events BIGINT); "
    "CREATE TABLE bench_events (tenant_id TEXT, metric TEXT, user_id TEXT, day BIGINT, events BIGINT, value BIGINT); "
    "CREATE TABLE bench_lines (tenant_id TEXT, invoice_id TEXT, line_no BIGINT, kind TEXT, currency TEXT, amount "
    "BIGINT, at BIGINT); CREATE TABLE bench_payments (tenant_id TEXT, id TEXT, currency TEXT, amount BIGINT, at "
    "BIGINT)"};
constexpr storage::Statement k_copies[] = {
    {"",
     "INSERT INTO bench_usage SELECT tenant_id, metric, hour / 86400000, CAST(SUM(quantity_sum) AS BIGINT), "
     "CAST(SUM(event_count) AS BIGINT) FROM usage_rollups WHERE metric NOT LIKE 'event:%' GROUP BY tenant_id, "
     "metric, hour / 86400000"},
    {"",
     "INSERT INTO bench_events SELECT tenant_id, metric, COALESCE(user_id, ''), ts / 86400000, COUNT(*), "
     "CAST(SUM(quantity) AS BIGINT) FROM usage_events WHERE metric LIKE 'event:%' GROUP BY tenant_id, metric, "
     "COALESCE(user_id, ''), ts / 86400000"},
    {"",
     "INSERT INTO bench_lines SELECT i.tenant_id, i.id, l.line_no, l.kind, i.currency, l.amount, i.finalized_at "
     "FROM invoices i JOIN invoice_lines l ON l.tenant_id = i.tenant_id AND l.invoice_id = i.id WHERE "
     "i.finalized_at IS NOT NULL AND i.status <> 'void' AND i.status <> 'draft' AND i.test_clock_id IS NULL"},
    {"",
     "INSERT INTO bench_payments SELECT a.tenant_id, a.id, a.currency, a.amount, a.completed_at FROM "
     "payment_attempts a JOIN invoices i ON i.tenant_id = a.tenant_id AND i.id = a.invoice_id WHERE a.status = "
     "'succeeded' AND i.test_clock_id IS NULL"},
};
constexpr storage::Statement k_busiest{
    "",
    "SELECT tenant_id, COUNT(*) FROM usage_events WHERE metric LIKE 'event:%' GROUP BY tenant_id ORDER BY 2 DESC "
    "LIMIT 1"};

double seconds_since(Steady::time_point t) { return std::chrono::duration<double>(Steady::now() - t).count(); }

std::pair<double, double> p50_p99(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  return {at(0.50), at(0.99)};
}

int run(int argc, char** argv) {
  app::DemoOptions demo{.tenants = 1000, .months = 24, .seed = 1, .progress = {}};
  int queries = 50;
  int chunk_days = 31;
  std::string server_url;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--tenants") demo.tenants = std::stoi(argv[i + 1]);
    if (flag == "--months") demo.months = std::stoi(argv[i + 1]);
    if (flag == "--seed") demo.seed = std::stoull(argv[i + 1]);
    if (flag == "--queries") queries = std::stoi(argv[i + 1]);
    if (flag == "--chunk-days") chunk_days = std::stoi(argv[i + 1]);
    if (flag == "--database-url") server_url = argv[i + 1];
  }
  auto dir = bench::TempDir::create("atrium-analytics-bench");
  if (!dir) return bench::note(dir.error().message), 1;
  std::unique_ptr<bench::PgScratch> pg;
  std::unique_ptr<bench::PgScratch> pg_warehouse;
  Config config;
  config.storage.data_dir = (*dir)->path();
  config.identity.password_cost = "minimum";
  if (!server_url.empty()) {
    auto scratch = bench::PgScratch::create(server_url);
    if (!scratch) return bench::note(scratch.error().message), 1;
    pg = std::move(*scratch);
    config.storage.database_url = pg->url();
    auto wh = bench::PgScratch::create(server_url);
    if (!wh) return bench::note(wh.error().message), 1;
    pg_warehouse = std::move(*wh);
  }
  const Instant until = std::chrono::floor<std::chrono::days>(SystemClock::instance().now());
  ManualClock clock(app::demo_start(until, demo.months));
  auto opened = app::Platform::open(config, clock, {.migrate = true, .background = false});
  if (!opened) return bench::note(opened.error().message), 1;
  app::Platform& p = **opened;

  const auto seeding = Steady::now();
  demo.progress = [](std::int64_t done, std::int64_t total) {
    if (done % 60 == 0 || done == total) bench::note(fmt::format("demo seed: day {} of {}", done, total));
  };
  auto seeded = app::seed_demo(p, clock, until, demo);
  if (!seeded) return bench::note(seeded.error().message), 1;
  std::printf("seed       %d tenants x %d months: %lld subscriptions, %lld events in %.1f s\n", demo.tenants,
              demo.months, static_cast<long long>(seeded->subscriptions), static_cast<long long>(seeded->events),
              seconds_since(seeding));

  const std::string warehouse_url =
      pg_warehouse ? pg_warehouse->url()
                   : "sqlite:" + (*dir)->path() + "/warehouse-" + std::to_string(chunk_days) + ".db";
  auto wh = warehouse::Warehouse::open({.url = warehouse_url,
                                        .data_dir = (*dir)->path(),
                                        .lookback_days = 3,
                                        .reader_role = "",
                                        .chunk_days = chunk_days},
                                       *p.tenant_data, clock, nullptr);
  if (!wh) return bench::note(wh.error().message), 1;
  const auto etl_start = Steady::now();
  auto etl = (*wh)->run_etl({.full = true, .from = std::nullopt, .progress = {}});
  if (!etl) return bench::note(etl.error().message), 1;
  const double etl_s = seconds_since(etl_start);
  std::printf("etl        %lld source rows (%lld days, %d-day chunks) in %.2f s: %.0f rows/s; %lld fact rows written\n",
              static_cast<long long>(etl->source_rows), static_cast<long long>(etl->to_day - etl->from_day), chunk_days,
              etl_s, static_cast<double>(etl->source_rows) / etl_s, static_cast<long long>(etl->warehouse_rows));
  // An incremental run right after (the watermark less the look-back): what the 15-minute cron pays.
  const auto again_start = Steady::now();
  auto again = (*wh)->run_etl();
  if (!again) return bench::note(again.error().message), 1;
  std::printf("etl again  %lld source rows (%lld days) in %.2f s\n", static_cast<long long>(again->source_rows),
              static_cast<long long>(again->to_day - again->from_day), seconds_since(again_start));

  std::int64_t copied = 0;
  const auto copy_start = Steady::now();
  auto copy = p.tenant_data->transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    if (auto r = ptx.control().execute_script(k_copy_tables.sql); !r) return r;
    for (const auto& statement : k_copies) {
      auto r = ptx.control().execute(statement);
      if (!r) return std::unexpected(r.error());
      copied += r->affected_rows;
    }
    return fail(Errc::conflict, "rolled back on purpose");  // leave the control plane as it was
  });
  const double copy_s = seconds_since(copy_start);
  if (copy || copy.error().code != Errc::conflict) return bench::note("the copy failed"), 1;
  std::printf("copy       %lld rows in %.2f s: %.0f rows/s (etl / copy = %.2f)\n", static_cast<long long>(copied),
              copy_s, static_cast<double>(copied) / copy_s,
              (static_cast<double>(etl->source_rows) / etl_s) / (static_cast<double>(copied) / copy_s));

  const analytics::SaasQuery saas{
      .from = app::demo_start(until, demo.months), .to = until, .granularity = analytics::Granularity::month};
  std::vector<double> times;
  std::size_t ledger_rows = 0;
  for (int i = 0; i < queries; ++i) {
    const auto t = Steady::now();
    auto m = p.analytics->saas_metrics(saas);
    times.push_back(seconds_since(t));
    if (!m) return bench::note(m.error().message), 1;
  }
  {
    auto ledger = analytics::load_mrr_ledger(*p.tenant_data, until);
    if (!ledger) return bench::note(ledger.error().message), 1;
    ledger_rows = ledger->size();
  }
  auto [s50, s99] = p50_p99(times);
  std::printf("saas       %zu ledger rows, %d months: p50 %.1f ms, p99 %.1f ms (%.0f ledger rows/s at p50)\n",
              ledger_rows, demo.months, s50 * 1000, s99 * 1000, static_cast<double>(ledger_rows) / s50);

  std::string busiest;
  std::int64_t busiest_events = 0;
  auto b = p.tenant_data->transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    auto r = ptx.control().execute(k_busiest);
    if (!r) return std::unexpected(r.error());
    busiest = r->text_at(0, 0).value_or("");
    busiest_events = r->int_at(0, 1).value_or(0);
    return {};
  });
  if (!b) return bench::note(b.error().message), 1;
  times.clear();
  const analytics::ProductQuery product{
      .from = until - std::chrono::days(30), .to = until, .features = {}, .value_event = "feature.used", .user = ""};
  for (int i = 0; i < queries; ++i) {
    const auto t = Steady::now();
    auto m = p.analytics->product_metrics(busiest, product);
    times.push_back(seconds_since(t));
    if (!m) return bench::note(m.error().message), 1;
  }
  auto [d50, d99] = p50_p99(times);
  std::printf("dashboard  tenant with %lld product events, 30 days: p50 %.1f ms, p99 %.1f ms\n",
              static_cast<long long>(busiest_events), d50 * 1000, d99 * 1000);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
