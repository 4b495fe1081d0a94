// Usage ingestion without HTTP, beside its storage floor (bench/metering.sh runs it next to the HTTP load):
//   rows       the floor: the same rows inserted directly through storage::Database, 1,000 per transaction, with the
//              same INSERT ... ON CONFLICT DO NOTHING statement and the batch's roll-up upserts (what the ingestion
//              transaction does, minus validation and JSON);
//   ingest     metering::Metering::ingest on ready-made JSON batches of 1,000 (validation, dedupe, the transaction;
//              no HTTP and no body parsing).
// Both on a fresh Platform (migrated) over SQLite in a temp directory, or PostgreSQL when --database-url is given
// (a scratch database on that server). Prints one line per mode: events, seconds, events/s.
//
// Usage: atrium_metering_bench [--events N] [--database-url postgresql://...]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "api/usage_input.hpp"
#include "app/platform.hpp"
#include "core/ids.hpp"
#include "metering/metering.hpp"
#include "scratch.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace {

using namespace atrium;
using Clock_ = std::chrono::steady_clock;

constexpr std::size_t k_batch = 1000;

std::string rfc(std::int64_t ms) {
  return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms)));
}

int run(int argc, char** argv) {
  std::int64_t events = 200'000;
  std::string server_url;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--events") events = std::stoll(argv[i + 1]);
    if (flag == "--database-url") server_url = argv[i + 1];
  }
  auto dir = bench::TempDir::create("atrium-metering-bench");
  if (!dir) return bench::note(dir.error().message), 1;
  std::unique_ptr<bench::PgScratch> pg;
  Config config;
  config.storage.data_dir = (*dir)->path();
  config.audit.enabled = false;
  config.identity.password_cost = "minimum";
  if (!server_url.empty()) {
    auto scratch = bench::PgScratch::create(server_url);
    if (!scratch) return bench::note(scratch.error().message), 1;
    pg = std::move(*scratch);
    config.storage.database_url = pg->url();
  }
  const Clock& clock = SystemClock::instance();
  auto opened = app::Platform::open(config, clock, {.migrate = true, .background = false});
  if (!opened) return bench::note(opened.error().message), 1;
  app::Platform& p = **opened;
  auto tenant = p.create_tenant({.tenant = {.slug = "bench", .name = "Bench"}}, {});
  if (!tenant) return bench::note(tenant.error().message), 1;
  const std::string tenant_id = tenant->id;
  const std::int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch()).count();
  const std::string props = R"({"region":"eu"})";

  // The floor: the ingestion's statements, bound directly.
  constexpr tenancy::TenantStatement k_insert{
      "bench_event_insert",
      "INSERT INTO usage_events (tenant_id, idempotency_key, metric, quantity, ts, properties, received_at) VALUES "
      "($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, idempotency_key) DO NOTHING"};
  constexpr tenancy::TenantStatement k_rollup{
      "bench_rollup_upsert",
      "INSERT INTO usage_rollups (tenant_id, metric, hour, event_count, quantity_sum, quantity_max, latest_ts, "
      "latest_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, metric, hour) DO UPDATE SET "
      "event_count = usage_rollups.event_count + excluded.event_count, quantity_sum = usage_rollups.quantity_sum + "
      "excluded.quantity_sum"};
  {
    const auto start = Clock_::now();
    for (std::int64_t done = 0; done < events; done += k_batch) {
      auto r = p.tenant_data->transact_control_plane(tenant_id, [&](tenancy::TenantTransaction& tx) -> Result<void> {
        for (std::size_t j = 0; j < k_batch; ++j) {
          auto ins =
              tx.execute(k_insert, {storage::Value(fmt::format("rows-{}-{}", done, j)),
                                    storage::Value(std::string("api.calls")), storage::Value(std::int64_t(j % 10 + 1)),
                                    storage::Value(now - 1000), storage::Value(props), storage::Value(now)});
          if (!ins) return std::unexpected(ins.error());
        }
        auto up = tx.execute(k_rollup,
                             {storage::Value(std::string("api.calls")), storage::Value(now / 3'600'000),
                              storage::Value(std::int64_t(k_batch)), storage::Value(std::int64_t(5500)),
                              storage::Value(std::int64_t(10)), storage::Value(now), storage::Value(std::int64_t(1))});
        if (!up) return std::unexpected(up.error());
        return {};
      });
      if (!r) return bench::note(r.error().message), 1;
    }
    const double s = std::chrono::duration<double>(Clock_::now() - start).count();
    std::printf("rows    %lld events in %.2f s: %.0f events/s\n", static_cast<long long>(events), s,
                static_cast<double>(events) / s);
  }
  {
    std::vector<Json> batches;
    const std::string ts = rfc(now - 2000);
    for (std::int64_t done = 0; done < events; done += k_batch) {
      Json list = Json::array();
      for (std::size_t j = 0; j < k_batch; ++j) {
        list.push_back({{"metric", "api.calls"},
                        {"quantity", j % 10 + 1},
                        {"timestamp", ts},
                        {"idempotency_key", fmt::format("ingest-{}-{}", done, j)},
                        {"properties", {{"region", "eu"}}}});
      }
      batches.push_back({{"events", std::move(list)}});
    }
    const auto start = Clock_::now();
    for (const auto& b : batches) {
      // Decoded as POST /v1/usage decodes it, so the measure covers what the route does short of HTTP.
      auto batch = atrium::api::usage_input::usage_batch(b, p.metering->settings().max_batch);
      if (!batch) return bench::note(batch.error().message), 1;
      auto r = p.metering->ingest(tenant_id, std::move(*batch));
      if (!r) return bench::note(r.error().message), 1;
      if (r->accepted != static_cast<std::int64_t>(k_batch)) return bench::note("a batch was not fully accepted"), 1;
    }
    const double s = std::chrono::duration<double>(Clock_::now() - start).count();
    std::printf("ingest  %lld events in %.2f s: %.0f events/s\n", static_cast<long long>(events), s,
                static_cast<double>(events) / s);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
