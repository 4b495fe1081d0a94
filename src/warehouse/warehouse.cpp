#include "warehouse/warehouse.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <vector>

#include "core/failpoint.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "storage/migrations.hpp"
#include "warehouse/sql.hpp"

namespace atrium::warehouse {

namespace {

using std::chrono::days;
using std::chrono::sys_days;
using std::chrono::year_month_day;
using storage::Transaction;
using storage::Value;

constexpr std::int64_t k_day_seconds = 86'400;

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
std::int64_t day_of_seconds(std::int64_t s) { return floor_div(s, k_day_seconds); }

// YYYYMMDD of a day since the epoch.
std::int64_t date_key(std::int64_t day) {
  const year_month_day ymd{sys_days{days{day}}};
  return static_cast<int>(ymd.year()) * 10000 + static_cast<unsigned>(ymd.month()) * 100 +
         static_cast<unsigned>(ymd.day());
}

Result<void> add_date(Transaction& tx, std::int64_t day) {
  const sys_days d{days{day}};
  const year_month_day ymd{d};
  const std::chrono::weekday wd{d};
  const std::int64_t iso_weekday = wd.iso_encoding();
  // The ISO week's year is the year of its Thursday.
  const sys_days thursday = d + days{4 - iso_weekday};
  const year_month_day thursday_ymd{thursday};
  const sys_days jan1{thursday_ymd.year() / 1 / 1};
  const std::int64_t iso_week = (thursday - jan1).count() / 7 + 1;
  const std::int64_t month = static_cast<unsigned>(ymd.month());
  const std::string text = format_rfc3339(from_unix_seconds(day * k_day_seconds)).substr(0, 10);
  auto r = tx.execute(sql::k_date_upsert,
                      {Value(date_key(day)), Value(text), Value(std::int64_t{static_cast<int>(ymd.year())}),
                       Value((month - 1) / 3 + 1), Value(month), Value(std::int64_t{static_cast<unsigned>(ymd.day())}),
                       Value(std::int64_t{static_cast<int>(thursday_ymd.year())}), Value(iso_week), Value(iso_weekday),
                       Value(date_key(day - (iso_weekday - 1))),
                       Value(date_key(sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch().count()))});
  if (!r) return std::unexpected(r.error());
  return {};
}

struct LedgerRow {
  std::string tenant_id;
  std::string subscription_id;
  std::int64_t day = 0;  // the day the change took effect
  std::string plan_id;
  std::int64_t plan_version = 0;
  std::string tier;
  std::string currency;
  std::int64_t mrr = 0;
};

// One fact row, as the values of its insert statement.
struct Row {
  const storage::Statement* insert;
  std::vector<Value> values;
};

}  // namespace

struct Warehouse::Impl {
  Settings settings;
  std::unique_ptr<storage::Database> db;
  tenancy::TenantData& source;
  const Clock& clock;
  std::mutex run_mutex;
  metrics::Gauge* duration = nullptr;
  metrics::Gauge* last_success = nullptr;
  metrics::Counter* source_rows = nullptr;
  // Shared with the registry's collector, which may outlive this object.
  std::shared_ptr<std::atomic<std::int64_t>> last_success_s = std::make_shared<std::atomic<std::int64_t>>(0);

  Result<void> load_dimensions(std::int64_t from_day, std::int64_t to_day);
  Result<std::vector<LedgerRow>> load_ledger(std::int64_t before_day);
  Result<std::int64_t> load_chunk(std::int64_t from_day, std::int64_t to_day, const std::vector<LedgerRow>& ledger,
                                  std::int64_t next_day, std::int64_t first_day, std::int64_t& written);
  Result<std::optional<std::int64_t>> first_source_day();
};

Warehouse::Warehouse(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Warehouse::~Warehouse() = default;

storage::Database& Warehouse::database() { return *impl_->db; }

Result<std::unique_ptr<Warehouse>> Warehouse::open(const Settings& settings, tenancy::TenantData& source,
                                                   const Clock& clock, metrics::Registry* registry) {
  std::string url = settings.url;
  if (url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(settings.data_dir, ec);
    if (ec) return fail(Errc::invalid_argument, "storage.data_dir " + settings.data_dir + ": " + ec.message());
    url = (std::filesystem::path(settings.data_dir) / "warehouse.db").string();
  }
  auto db = storage::open_database({.url = url, .pool_size = 4});
  if (!db) return fail(db.error().code, "cannot open the analytics warehouse: " + db.error().message);
  const auto migrations = storage::builtin_migrations((*db)->backend(), storage::MigrationSet::warehouse);
  auto migrated = storage::migrate(**db, migrations, clock, {}, storage::MigrationSet::warehouse);
  if (!migrated) return fail(migrated.error().code, "warehouse migrations: " + migrated.error().message);
  if (!settings.reader_role.empty()) {
    if ((*db)->backend() != storage::Backend::postgres) {
      return fail(Errc::invalid_argument, "analytics.warehouse_reader_role needs a PostgreSQL warehouse");
    }
    auto granted = (*db)->transact([&](Transaction& tx) -> Result<void> {
      auto r = tx.execute(sql::k_grant_reader, {Value(settings.reader_role)});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    if (!granted) return fail(granted.error().code, "granting the warehouse reader: " + granted.error().message);
  }
  auto impl = std::unique_ptr<Impl>(new Impl{settings,
                                             std::move(*db),
                                             source,
                                             clock,
                                             {},
                                             nullptr,
                                             nullptr,
                                             nullptr,
                                             std::make_shared<std::atomic<std::int64_t>>(0)});
  if (registry) {
    impl->duration =
        &registry
             ->gauge("atrium_analytics_etl_duration_seconds", "How long the last successful warehouse ETL run took.")
             .with({});
    impl->last_success = &registry
                              ->gauge("atrium_analytics_etl_last_success_timestamp_seconds",
                                      "When the last successful warehouse ETL run finished (Unix seconds).")
                              .with({});
    impl->source_rows = &registry
                             ->counter("atrium_analytics_etl_source_rows_total",
                                       "Control-plane rows the warehouse ETL read for its facts.")
                             .with({});
    registry->add_collector([last_success = impl->last_success_s, &clock](std::string& out) {
      const std::int64_t last = last_success->load();
      if (last == 0) return;
      out +=
          "# HELP atrium_analytics_etl_lag_seconds Seconds since the last successful warehouse ETL run finished.\n"
          "# TYPE atrium_analytics_etl_lag_seconds gauge\natrium_analytics_etl_lag_seconds ";
      out += std::to_string(std::max<std::int64_t>(0, unix_seconds(clock.now()) - last));
      out += '\n';
    });
  }
  return std::unique_ptr<Warehouse>(new Warehouse(std::move(impl)));
}

Result<std::optional<std::int64_t>> Warehouse::Impl::first_source_day() {
  std::optional<std::int64_t> first;
  auto r = source.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto rows = ptx.control().execute(sql::k_src_first);
        if (!rows) return std::unexpected(rows.error());
        if (auto t = rows->empty() ? std::nullopt : rows->int_at(0, 0)) first = day_of_seconds(*t);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return first;
}

// Tenants (with their plan and status history as the ETL sees them change), plans and dates.
Result<void> Warehouse::Impl::load_dimensions(std::int64_t from_day, std::int64_t to_day) {
  storage::ResultSet tenants;
  storage::ResultSet plans;
  auto read = source.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto t = ptx.control().execute(sql::k_src_tenants);
        if (!t) return std::unexpected(t.error());
        auto p = ptx.control().execute(sql::k_src_plans);
        if (!p) return std::unexpected(p.error());
        tenants = std::move(*t);
        plans = std::move(*p);
        return {};
      },
      {.read_only = true});
  if (!read) return read;
  const std::int64_t today = date_key(day_of_seconds(unix_seconds(clock.now())));
  return db->transact([&](Transaction& tx) -> Result<void> {
    for (std::int64_t d = from_day; d < to_day; ++d) {
      if (auto r = add_date(tx, d); !r) return r;
    }
    struct State {
      std::int64_t valid_from = 0;
      std::string plan;
      std::string status;
    };
    std::map<std::string, State> current;
    auto states = tx.execute(sql::k_history_current);
    if (!states) return std::unexpected(states.error());
    for (std::size_t i = 0; i < states->rows.size(); ++i) {
      current[states->text_at(i, 0).value_or("")] = {.valid_from = states->int_at(i, 1).value_or(0),
                                                     .plan = states->text_at(i, 2).value_or(""),
                                                     .status = states->text_at(i, 3).value_or("")};
    }
    for (std::size_t i = 0; i < tenants.rows.size(); ++i) {
      const std::string id = tenants.text_at(i, 0).value_or("");
      const std::string status = tenants.text_at(i, 4).value_or("");
      const std::string plan = tenants.text_at(i, 5).value_or("");
      const auto created = parse_rfc3339(tenants.text_at(i, 6).value_or(""));
      const std::int64_t created_s = created ? unix_seconds(*created) : 0;
      auto up =
          tx.execute(sql::k_tenant_upsert,
                     {Value(id), Value(tenants.text_at(i, 1).value_or("")), Value(tenants.text_at(i, 2).value_or("")),
                      Value(tenants.text_at(i, 3).value_or("")), Value(status), Value(plan), Value(created_s)});
      if (!up) return std::unexpected(up.error());
      auto now_state = current.find(id);
      if (now_state == current.end()) {
        auto o = tx.execute(sql::k_history_open,
                            {Value(id), Value(date_key(day_of_seconds(created_s))), Value(plan), Value(status)});
        if (!o) return std::unexpected(o.error());
        continue;
      }
      if (now_state->second.plan == plan && now_state->second.status == status) continue;
      const std::int64_t valid_from = now_state->second.valid_from;
      if (valid_from == today) {  // changed again the same day: the day's last state
        auto u = tx.execute(sql::k_history_replace, {Value(id), Value(valid_from), Value(plan), Value(status)});
        if (!u) return std::unexpected(u.error());
        continue;
      }
      auto c = tx.execute(sql::k_history_close, {Value(id), Value(valid_from), Value(today)});
      if (!c) return std::unexpected(c.error());
      auto o = tx.execute(sql::k_history_open, {Value(id), Value(today), Value(plan), Value(status)});
      if (!o) return std::unexpected(o.error());
    }
    for (std::size_t i = 0; i < plans.rows.size(); ++i) {
      std::vector<Value> v;
      for (std::size_t c = 0; c < 11; ++c) {
        if (c == 1 || (c >= 7 && c <= 10)) {
          v.emplace_back(plans.int_at(i, c).value_or(0));
        } else {
          v.emplace_back(plans.text_at(i, c).value_or(""));
        }
      }
      auto r = tx.execute(sql::k_plan_upsert, v);
      if (!r) return std::unexpected(r.error());
    }
    return {};
  });
}

Result<std::vector<LedgerRow>> Warehouse::Impl::load_ledger(std::int64_t before_day) {
  std::vector<LedgerRow> out;
  auto r = source.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        auto rows = ptx.control().execute(sql::k_src_ledger, {Value(before_day * k_day_seconds)});
        if (!rows) return std::unexpected(rows.error());
        out.reserve(rows->rows.size());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          out.push_back({.tenant_id = rows->text_at(i, 0).value_or(""),
                         .subscription_id = rows->text_at(i, 1).value_or(""),
                         .day = day_of_seconds(rows->int_at(i, 2).value_or(0)),
                         .plan_id = rows->text_at(i, 3).value_or(""),
                         .plan_version = rows->int_at(i, 4).value_or(0),
                         .tier = rows->text_at(i, 5).value_or(""),
                         .currency = rows->text_at(i, 6).value_or(""),
                         .mrr = rows->int_at(i, 7).value_or(0)});
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

// Replaces the facts of the days [from_day, to_day) and moves the watermark to `next_day`, in one warehouse
// transaction. Returns the source rows read.
Result<std::int64_t> Warehouse::Impl::load_chunk(std::int64_t from_day, std::int64_t to_day,
                                                 const std::vector<LedgerRow>& ledger, std::int64_t next_day,
                                                 std::int64_t first_day, std::int64_t& written) {
  std::vector<Row> rows;
  std::int64_t read = 0;
  const std::int64_t from_key = date_key(from_day);
  const std::int64_t to_key = date_key(to_day);
  // Daily MRR per subscription: its ledger state at the end of each day (days where it pays).
  {
    std::map<std::string, const LedgerRow*> state;  // by tenant and subscription
    std::size_t i = 0;
    for (; i < ledger.size() && ledger[i].day < from_day; ++i) {
      state[ledger[i].tenant_id + "/" + ledger[i].subscription_id] = &ledger[i];
    }
    for (std::int64_t d = from_day; d < to_day; ++d) {
      for (; i < ledger.size() && ledger[i].day == d; ++i) {
        state[ledger[i].tenant_id + "/" + ledger[i].subscription_id] = &ledger[i];
      }
      for (const auto& [key, l] : state) {
        if (l->mrr <= 0) continue;
        rows.push_back({&sql::k_mrr_insert,
                        {Value(date_key(d)), Value(l->tenant_id), Value(l->subscription_id), Value(l->plan_id),
                         Value(l->plan_version), Value(l->tier), Value(l->currency), Value(l->mrr)}});
      }
    }
  }
  auto r = source.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        Transaction& tx = ptx.control();
        const Value from_ms(from_day * k_day_seconds * 1000);
        const Value to_ms(to_day * k_day_seconds * 1000);
        const Value from_s(from_day * k_day_seconds);
        const Value to_s(to_day * k_day_seconds);
        std::vector<Row> found;
        auto usage = tx.execute(sql::k_src_usage, {from_ms, to_ms});
        if (!usage) return std::unexpected(usage.error());
        for (std::size_t k = 0; k < usage->rows.size(); ++k) {
          found.push_back({&sql::k_usage_insert,
                           {Value(date_key(usage->int_at(k, 2).value_or(0))), Value(usage->text_at(k, 0).value_or("")),
                            Value(usage->text_at(k, 1).value_or("")), Value(usage->int_at(k, 3).value_or(0)),
                            Value(usage->int_at(k, 4).value_or(0))}});
        }
        auto events = tx.execute(sql::k_src_events, {from_ms, to_ms});
        if (!events) return std::unexpected(events.error());
        for (std::size_t k = 0; k < events->rows.size(); ++k) {
          const std::string metric = events->text_at(k, 1).value_or("");
          found.push_back(
              {&sql::k_events_insert,
               {Value(date_key(events->int_at(k, 3).value_or(0))), Value(events->text_at(k, 0).value_or("")),
                Value(metric.substr(std::min<std::size_t>(6, metric.size()))),
                Value(events->text_at(k, 2).value_or("")), Value(events->int_at(k, 4).value_or(0)),
                Value(events->int_at(k, 5).value_or(0))}});
        }
        auto lines = tx.execute(sql::k_src_invoice_lines, {from_s, to_s});
        if (!lines) return std::unexpected(lines.error());
        for (std::size_t k = 0; k < lines->rows.size(); ++k) {
          found.push_back({&sql::k_revenue_insert,
                           {Value(date_key(day_of_seconds(lines->int_at(k, 6).value_or(0)))),
                            Value(lines->text_at(k, 0).value_or("")), Value(std::string("invoice_line")),
                            Value(lines->text_at(k, 1).value_or("")), Value(lines->int_at(k, 2).value_or(0)),
                            Value(lines->text_at(k, 3).value_or("")), Value(lines->text_at(k, 4).value_or("")),
                            Value(lines->int_at(k, 5).value_or(0))}});
        }
        auto payments = tx.execute(sql::k_src_payments, {from_s, to_s});
        if (!payments) return std::unexpected(payments.error());
        for (std::size_t k = 0; k < payments->rows.size(); ++k) {
          found.push_back(
              {&sql::k_revenue_insert,
               {Value(date_key(day_of_seconds(payments->int_at(k, 4).value_or(0)))),
                Value(payments->text_at(k, 0).value_or("")), Value(std::string("payment")),
                Value(payments->text_at(k, 1).value_or("")), Value(std::int64_t{0}), Value(std::string("payment")),
                Value(payments->text_at(k, 2).value_or("")), Value(payments->int_at(k, 3).value_or(0))}});
        }
        auto credits = tx.execute(sql::k_src_credit_notes, {from_s, to_s});
        if (!credits) return std::unexpected(credits.error());
        for (std::size_t k = 0; k < credits->rows.size(); ++k) {
          found.push_back({&sql::k_revenue_insert,
                           {Value(date_key(day_of_seconds(credits->int_at(k, 5).value_or(0)))),
                            Value(credits->text_at(k, 0).value_or("")), Value(std::string("credit_note")),
                            Value(credits->text_at(k, 1).value_or("")), Value(std::int64_t{0}),
                            Value(credits->text_at(k, 2).value_or("")), Value(credits->text_at(k, 3).value_or("")),
                            Value(-credits->int_at(k, 4).value_or(0))}});
        }
        read = static_cast<std::int64_t>(usage->rows.size() + events->rows.size() + lines->rows.size() +
                                         payments->rows.size() + credits->rows.size());
        rows.insert(rows.end(), std::make_move_iterator(found.begin()), std::make_move_iterator(found.end()));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  auto w = db->transact([&](Transaction& tx) -> Result<void> {
    if (tx.backend() == storage::Backend::postgres) {
      if (auto l = tx.execute(sql::k_lock); !l) return std::unexpected(l.error());
    }
    for (const auto* clear :
         {&sql::k_clear_metrics, &sql::k_clear_mrr, &sql::k_clear_revenue, &sql::k_clear_usage, &sql::k_clear_events}) {
      auto c = tx.execute(*clear, {Value(from_key), Value(to_key)});
      if (!c) return std::unexpected(c.error());
    }
    for (const Row& row : rows) {
      auto i = tx.execute(*row.insert, row.values);
      if (!i) return std::unexpected(i.error());
    }
    for (const auto* derive : {&sql::k_users_upsert, &sql::k_metrics_insert}) {
      auto d = tx.execute(*derive, {Value(from_key), Value(to_key)});
      if (!d) return std::unexpected(d.error());
    }
    auto s = tx.execute(sql::k_state_set, {Value(next_day), Value(first_day), Value(unix_seconds(clock.now()))});
    if (!s) return std::unexpected(s.error());
    return {};
  });
  if (!w) return std::unexpected(w.error());
  written += static_cast<std::int64_t>(rows.size());
  return read;
}

Result<EtlStats> Warehouse::run_etl(const EtlOptions& options) {
  Impl& s = *impl_;
  std::lock_guard lock(s.run_mutex);
  const auto started = s.clock.monotonic();
  const Instant now = s.clock.now();
  const std::int64_t today = day_of_seconds(unix_seconds(now));
  EtlStats stats;
  stats.to_day = today + 1;
  if (options.from) {
    if (unix_seconds(*options.from) % k_day_seconds != 0) {
      return fail(Errc::invalid_argument, "from must be a date (midnight UTC)");
    }
    stats.from_day = day_of_seconds(unix_seconds(*options.from));
  } else {
    std::optional<std::int64_t> next;
    std::int64_t first = 0;
    if (!options.full) {
      auto state = storage::transact_value<storage::ResultSet>(
          *s.db, [](Transaction& tx) { return tx.execute(sql::k_state_get); }, {.read_only = true});
      if (!state) return std::unexpected(state.error());
      if (!state->empty()) {
        next = state->int_at(0, 0);
        first = state->int_at(0, 1).value_or(0);
      }
    }
    if (next) {
      // The look-back never reaches before the first day ever loaded (no source rows are older).
      stats.from_day = std::max(*next - s.settings.lookback_days, first);
    } else {
      auto first = s.first_source_day();
      if (!first) return std::unexpected(first.error());
      stats.from_day = first->value_or(today);
    }
  }
  stats.from_day = std::min(stats.from_day, today);
  if (auto d = s.load_dimensions(stats.from_day, stats.to_day); !d) return std::unexpected(d.error());
  auto ledger = s.load_ledger(stats.to_day);
  if (!ledger) return std::unexpected(ledger.error());
  const std::string run_id = new_uuid_v7(s.clock);
  auto begun = s.db->transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(sql::k_run_insert,
                        {Value(run_id), Value(unix_seconds(now)), Value(stats.from_day), Value(stats.to_day)});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!begun) return std::unexpected(begun.error());
  const std::int64_t total = stats.to_day - stats.from_day;
  const std::int64_t chunk = std::max(1, s.settings.chunk_days);
  for (std::int64_t from = stats.from_day; from < stats.to_day; from += chunk) {
    const std::int64_t to = std::min(from + chunk, stats.to_day);
    // Today is never final: the watermark stops at it, so the next run loads it again.
    auto read = s.load_chunk(from, to, *ledger, std::min(to, today), stats.from_day, stats.warehouse_rows);
    if (!read) return std::unexpected(read.error());
    stats.source_rows += *read;
    if (s.source_rows) s.source_rows->inc(static_cast<double>(*read));
    if (options.progress) options.progress(to - stats.from_day, total);
    failpoint("warehouse.after_chunk");
    if (failing("warehouse.after_chunk")) return fail(Errc::internal, "stopped after a chunk (injected failure)");
  }
  stats.duration = std::chrono::duration_cast<std::chrono::milliseconds>(s.clock.monotonic() - started);
  auto finished = s.db->transact([&](Transaction& tx) -> Result<void> {
    auto r = tx.execute(sql::k_run_finish, {Value(run_id), Value(unix_seconds(s.clock.now())), Value(stats.source_rows),
                                            Value(std::string("succeeded"))});
    if (!r) return std::unexpected(r.error());
    return {};
  });
  if (!finished) return std::unexpected(finished.error());
  s.last_success_s->store(unix_seconds(s.clock.now()));
  if (s.duration) s.duration->set(static_cast<double>(stats.duration.count()) / 1000.0);
  if (s.last_success) s.last_success->set(static_cast<double>(s.last_success_s->load()));
  return stats;
}

}  // namespace atrium::warehouse
