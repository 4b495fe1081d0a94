#pragma once

// The analytics warehouse (docs/analytics.md, Warehouse): a star schema in a database of its own (a SQLite file
// under the data directory by default, or the PostgreSQL database analytics.warehouse_url names), loaded from the
// control plane by an incremental ETL. The ETL replaces whole UTC days of every fact, from where the last run
// stopped less a look-back, one chunk of days per warehouse transaction that also moves the watermark: running it
// twice, re-running a window or resuming after a crash gives the same tables, and a row arriving late within the
// look-back is counted once.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::warehouse {

struct Settings {
  std::string url;          // analytics.warehouse_url: "" for <data_dir>/warehouse.db, else postgresql://... or a path
  std::string data_dir;     // storage.data_dir
  int lookback_days = 3;    // analytics.etl_lookback_days: days before the watermark loaded again
  std::string reader_role;  // analytics.warehouse_reader_role: PostgreSQL role granted SELECT (BI tools); "" none
  int chunk_days = 31;      // days per warehouse transaction
};

struct EtlOptions {
  bool full = false;            // reload from the first day any source row has
  std::optional<Instant> from;  // reload from this day (midnight UTC) on
  // (days done, days in the run), after each committed chunk.
  std::function<void(std::int64_t, std::int64_t)> progress;
};

struct EtlStats {
  std::int64_t from_day = 0;  // days since the epoch; [from_day, to_day) was loaded
  std::int64_t to_day = 0;
  std::int64_t source_rows = 0;     // rows read from the control plane for the facts
  std::int64_t warehouse_rows = 0;  // fact rows written
  std::chrono::milliseconds duration{0};
};

class Warehouse {
 public:
  // Opens (creating the SQLite file if needed) and migrates the warehouse, and grants the reader role. `source`
  // reads the control plane in the platform scope. With `registry`: the ETL's metrics
  // (atrium_analytics_etl_duration_seconds, _last_success_timestamp_seconds, _lag_seconds, _source_rows_total).
  static Result<std::unique_ptr<Warehouse>> open(const Settings& settings, tenancy::TenantData& source,
                                                 const Clock& clock, metrics::Registry* registry);
  ~Warehouse();
  Warehouse(const Warehouse&) = delete;
  Warehouse& operator=(const Warehouse&) = delete;

  // One ETL run up to the end of today (UTC). Runs of one process are serialized; runs of several processes
  // serialize chunk by chunk (an advisory lock on PostgreSQL, the one writer on SQLite) and, each chunk replacing
  // whole days, leave the same tables. invalid_argument for `from` not a midnight.
  Result<EtlStats> run_etl(const EtlOptions& options = {});

  storage::Database& database();

 private:
  struct Impl;
  explicit Warehouse(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::warehouse
