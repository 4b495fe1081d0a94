#include "metering/metering.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <map>
#include <span>
#include <unordered_set>

#include <fmt/format.h>

#include "core/ids.hpp"
#include "core/json_writer.hpp"

namespace atrium::metering {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr std::int64_t k_hour_ms = 3'600'000;
constexpr std::int64_t k_day_ms = 24 * k_hour_ms;
constexpr std::int64_t k_max_quantity = 1'000'000'000'000;  // 10^12 units per event
constexpr std::size_t k_max_properties_bytes = 4096;

// ---- statements
// -------------------------------------------------------------------------------------------------

constexpr TenantStatement k_event_insert{"metering_event_insert",
                                         "INSERT INTO usage_events (tenant_id, idempotency_key, metric, quantity, "
                                         "ts, properties, received_at, user_id) VALUES ($1, "
                                         "$2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, idempotency_key) DO "
                                         "NOTHING"};
// PostgreSQL: a whole batch in one statement, its events a JSON array of {k, m, q, t, p, u} in key order (kept by
// ORDER BY n, so two batches sharing keys lock them in the same order). Returns the keys it inserted: a key already
// stored inserts nothing, so each idempotency key is stored once.
constexpr TenantStatement k_event_insert_batch{
    "metering_event_insert_batch",
    "INSERT INTO usage_events (tenant_id, idempotency_key, metric, quantity, ts, properties, received_at, user_id) "
    "SELECT $1::uuid, e.k, e.m, e.q, e.t, e.p, $2, e.u FROM ROWS FROM (jsonb_to_recordset($3::jsonb) AS "
    "(k TEXT, m TEXT, q BIGINT, t BIGINT, p TEXT, u TEXT)) WITH ORDINALITY AS e(k, m, q, t, p, u, n) ORDER BY e.n "
    "ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING idempotency_key"};
// The roll-up of one (metric, hour) grows by a batch's delta. In SET every
// right-hand side reads the old row.
constexpr TenantStatement k_rollup_upsert{"metering_rollup_upsert",
                                          "INSERT INTO usage_rollups (tenant_id, metric, hour, event_count, "
                                          "quantity_sum, quantity_max, latest_ts, "
                                          "latest_value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT "
                                          "(tenant_id, metric, hour) DO UPDATE SET "
                                          "event_count = usage_rollups.event_count + excluded.event_count, "
                                          "quantity_sum = usage_rollups.quantity_sum + excluded.quantity_sum, "
                                          "quantity_max = CASE WHEN excluded.quantity_max > "
                                          "usage_rollups.quantity_max THEN excluded.quantity_max ELSE "
                                          "usage_rollups.quantity_max END, "
                                          "latest_value = CASE WHEN excluded.latest_ts > usage_rollups.latest_ts OR "
                                          "(excluded.latest_ts = "
                                          "usage_rollups.latest_ts AND excluded.latest_value > "
                                          "usage_rollups.latest_value) THEN excluded.latest_value ELSE "
                                          "usage_rollups.latest_value END, "
                                          "latest_ts = CASE WHEN excluded.latest_ts > usage_rollups.latest_ts THEN "
                                          "excluded.latest_ts ELSE "
                                          "usage_rollups.latest_ts END"};
constexpr TenantStatement k_events_range{"metering_events_range",
                                         "SELECT ts, quantity FROM usage_events WHERE "
                                         "tenant_id = $1 AND metric = $2 "
                                         "AND ts >= $3 AND ts < $4"};
constexpr TenantStatement k_events_range_props{"metering_events_range_props",
                                               "SELECT ts, quantity, properties, idempotency_key FROM usage_events "
                                               "WHERE tenant_id = $1 AND metric = $2 AND ts >= $3 AND ts < $4"};
constexpr TenantStatement k_rollups_range{"metering_rollups_range",
                                          "SELECT hour, event_count, quantity_sum, quantity_max, latest_ts, "
                                          "latest_value FROM usage_rollups WHERE tenant_id = $1 AND metric = $2 AND "
                                          "hour >= $3 AND hour < $4 ORDER BY hour"};
// Per metric, so the (tenant_id, metric, ts) index finds the old rows instead
// of a scan of the tenant's events.
constexpr TenantStatement k_events_expire{"metering_events_expire",
                                          "DELETE FROM usage_events WHERE tenant_id = $1 AND metric IN (SELECT "
                                          "DISTINCT metric FROM usage_rollups WHERE "
                                          "tenant_id = $1) AND ts < $2"};

constexpr TenantStatement k_event_exists{"metering_event_exists",
                                         "SELECT 1 FROM usage_events WHERE tenant_id = $1 AND idempotency_key = $2"};

// Re-encryption of the properties (tenancy::SealedColumn), a page of rows after key $2 at a time.
constexpr TenantStatement k_properties_page{"metering_properties_page",
                                            "SELECT idempotency_key, properties FROM usage_events WHERE tenant_id = "
                                            "$1 AND idempotency_key > $2 ORDER BY idempotency_key LIMIT $3"};
constexpr TenantStatement k_properties_update{"metering_properties_update",
                                              "UPDATE usage_events SET properties = $3 WHERE tenant_id = $1 AND "
                                              "idempotency_key = $2 AND properties = $4"};

constexpr std::array<TenantStatement, 10> k_tenant_statements{
    k_event_insert,  k_event_insert_batch, k_rollup_upsert, k_events_range,    k_events_range_props,
    k_rollups_range, k_events_expire,      k_event_exists,  k_properties_page, k_properties_update};

// Properties with nothing in them are stored as they are: "{}" says nothing, and most events (API calls, activity
// marks) carry none.
constexpr std::string_view k_no_properties = "{}";

// Hard quotas on PostgreSQL: batches of one tenant that add to one hard-limited metric take turns (transactions
// are READ COMMITTED, so the value read after the lock includes every batch committed before it).
constexpr Statement k_quota_lock{"metering_quota_lock", "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"};

constexpr Statement k_tenants_with_usage{"metering_tenants_with_usage",
                                         "SELECT DISTINCT tenant_id FROM usage_rollups WHERE hour >= $1 AND hour < $2"};

#define METER_COLS "id, metric, name, aggregation, property, filters, created_at"
constexpr Statement k_meter_insert{"metering_meter_insert",
                                   "INSERT INTO meters (" METER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7)"};
constexpr Statement k_meter_list{"metering_meter_list", "SELECT " METER_COLS " FROM meters ORDER BY metric"};
constexpr Statement k_meter_find{"metering_meter_find", "SELECT " METER_COLS " FROM meters WHERE metric = $1"};

struct Parsed {
  std::size_t index = 0;
  std::string key;
  std::string metric;
  std::int64_t quantity = 0;
  std::int64_t ts = 0;
  std::string properties;  // JSON text, "{}" when none
  std::string user_id;     // "" when none
  std::string stored;      // what is written: `properties`, or their sealed form (set in the ingest transaction)
};

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// The events as k_event_insert_batch reads them: [{"k", "m", "q", "t", "p", "u"}, ...] in their order.
std::string batch_rows(const std::vector<Parsed>& events) {
  JsonWriter w(events.size() * 160);
  w.begin_array();
  for (const Parsed& p : events) {
    w.begin_object().key("k").string(p.key).key("m").string(p.metric).key("q").number(p.quantity);
    w.key("t").number(p.ts).key("p").string(p.stored).key("u");
    if (p.user_id.empty()) {
      w.null();
    } else {
      w.string(p.user_id);
    }
    w.end_object();
  }
  w.end_array();
  return w.take();
}

struct Delta {
  std::int64_t count = 0;
  std::int64_t sum = 0;
  std::int64_t max = std::numeric_limits<std::int64_t>::min();
  std::int64_t latest_ts = std::numeric_limits<std::int64_t>::min();
  std::int64_t latest_value = 0;
  void add(std::int64_t ts, std::int64_t quantity) {
    ++count;
    sum += quantity;
    max = std::max(max, quantity);
    if (ts > latest_ts || (ts == latest_ts && quantity > latest_value)) {
      latest_ts = ts;
      latest_value = quantity;
    }
  }
  void merge(const Delta& o) {
    if (o.count == 0) return;
    count += o.count;
    sum += o.sum;
    max = std::max(max, o.max);
    if (o.latest_ts > latest_ts || (o.latest_ts == latest_ts && o.latest_value > latest_value)) {
      latest_ts = o.latest_ts;
      latest_value = o.latest_value;
    }
  }
};

// What one (window, group) accumulates.
struct Acc {
  Delta d;
  std::unordered_set<std::string> distinct;  // unique_count: the property values' JSON text
};

std::optional<std::int64_t> value_of(const Acc& a, Aggregation agg) {
  switch (agg) {
    case Aggregation::sum: return a.d.sum;
    case Aggregation::count: return a.d.count;
    case Aggregation::unique_count: return static_cast<std::int64_t>(a.distinct.size());
    case Aggregation::max:
      if (a.d.count == 0) return std::nullopt;
      return a.d.max;
    case Aggregation::latest:
      if (a.d.count == 0) return std::nullopt;
      return a.d.latest_value;
  }
  return std::nullopt;
}

bool matches(const Json& props, const Filters& filters) {
  for (const auto& [name, want] : filters) {
    auto it = props.find(name);
    if (it == props.end() || *it != want) return false;
  }
  return true;
}

Json filters_json(const Filters& f) {
  Json j = Json::object();
  for (const auto& [k, v] : f) j[k] = v;
  return j;
}

Result<Meter> meter_from_row(const storage::ResultSet& rs, std::size_t i) {
  Meter m;
  m.id = rs.text_at(i, 0).value_or("");
  m.metric = rs.text_at(i, 1).value_or("");
  m.name = rs.text_at(i, 2).value_or("");
  m.aggregation = parse_aggregation(rs.text_at(i, 3).value_or("")).value_or(Aggregation::sum);
  m.property = rs.text_at(i, 4).value_or("");
  std::string error;
  auto filters = parse_json(rs.text_at(i, 5).value_or("{}"), JsonLimits{}, &error);
  if (!filters) return fail(Errc::internal, "meter " + m.id + ": stored filters are not JSON");
  auto f = parse_filters(*filters);
  if (!f) return std::unexpected(f.error());
  m.filters = std::move(*f);
  m.created_at = from_unix_ms(rs.int_at(i, 6).value_or(0));
  return m;
}

}  // namespace

namespace {

std::int64_t window_start_ms(std::int64_t ms, Window w) {
  using namespace std::chrono;
  switch (w) {
    case Window::none: return ms;
    case Window::hour: return floor_div(ms, k_hour_ms) * k_hour_ms;
    case Window::day: return floor_div(ms, k_day_ms) * k_day_ms;
    case Window::month: {
      const year_month_day ymd{sys_days{days{floor_div(ms, k_day_ms)}}};
      const sys_days first{ymd.year() / ymd.month() / 1};
      return static_cast<std::int64_t>(first.time_since_epoch().count()) * k_day_ms;
    }
  }
  return ms;
}

std::int64_t next_window_start_ms(std::int64_t start_ms, Window w) {
  using namespace std::chrono;
  switch (w) {
    case Window::none: return std::numeric_limits<std::int64_t>::max();
    case Window::hour: return start_ms + k_hour_ms;
    case Window::day: return start_ms + k_day_ms;
    case Window::month: {
      const year_month_day ymd{sys_days{days{floor_div(start_ms, k_day_ms)}}};
      const year_month next = ymd.year() / ymd.month() + months{1};
      const sys_days first{next / 1};
      return static_cast<std::int64_t>(first.time_since_epoch().count()) * k_day_ms;
    }
  }
  return start_ms;
}

}  // namespace

Instant window_start(Instant t, Window w) { return from_unix_ms(window_start_ms(unix_ms(t), w)); }

Instant next_window_start(Instant start, Window w) {
  if (w == Window::none) return Instant::max();
  return from_unix_ms(next_window_start_ms(unix_ms(start), w));
}

Json to_json(const IngestResult& r) {
  Json rejected = Json::array();
  for (const auto& x : r.rejected) {
    Json j = {{"index", x.index},
              {"idempotency_key", x.idempotency_key.empty() ? Json(nullptr) : Json(x.idempotency_key)},
              {"reason", x.reason},
              {"detail", x.detail}};
    if (!x.quota.empty()) j["quota"] = x.quota;
    rejected.push_back(std::move(j));
  }
  return {{"accepted", r.accepted}, {"duplicates", r.duplicates}, {"rejected", std::move(rejected)}};
}

Json to_json(const Meter& m) {
  return {{"id", m.id},
          {"metric", m.metric},
          {"name", m.name},
          {"aggregation", aggregation_name(m.aggregation)},
          {"property", m.property.empty() ? Json(nullptr) : Json(m.property)},
          {"filters", filters_json(m.filters)},
          {"created_at", format_rfc3339(m.created_at)}};
}

namespace {

// A hard limit as one ingest transaction enforces it: the metric's meter and its value so far in the period.
struct Guard {
  HardLimit limit;
  Aggregation aggregation = Aggregation::sum;
  Filters filters;
  std::int64_t used = 0;

  bool covers(const Parsed& p) const {
    if (p.ts < unix_ms(limit.from) || p.ts >= unix_ms(limit.to) || aggregation == Aggregation::unique_count)
      return false;
    if (filters.empty()) return true;
    auto props = parse_json(p.properties, JsonLimits{}, nullptr);
    return props && props->is_object() && matches(*props, filters);
  }
  bool over(const Parsed& p) const {
    switch (aggregation) {
      case Aggregation::sum: return p.quantity > 0 && p.quantity > limit.limit - used;  // nothing added: never over
      case Aggregation::count: return used >= limit.limit;
      case Aggregation::max:
      case Aggregation::latest: return p.quantity > limit.limit;
      case Aggregation::unique_count: return false;
    }
    return false;
  }
  void add(const Parsed& p) {
    if (aggregation == Aggregation::sum) used += p.quantity;
    if (aggregation == Aggregation::count) used += 1;
    if (aggregation == Aggregation::max) used = std::max(used, p.quantity);
  }
};

}  // namespace

struct Metering::Impl {
  storage::Database& control;
  tenancy::TenantData& data;
  audit::AuditLog& audit;
  const Clock& clock;
  Settings settings;
  metrics::Counter& accepted;
  metrics::Counter& duplicates;
  metrics::Family<metrics::Counter>& events;
  QuotaHooks hooks{};
  std::function<Result<TenantIngestion>(const std::string&)> tenant_ingestion;

  std::int64_t now_ms() const { return unix_ms(clock.now()); }

  void reject(IngestResult& out, Rejection r) {
    events.with({"rejected", r.reason}).inc();
    out.rejected.push_back(std::move(r));
  }
  void reject(IngestResult& out, std::size_t index, const UsageEvent& e, std::string reason, std::string detail) {
    reject(out, Rejection{.index = index,
                          .idempotency_key = e.idempotency_key.substr(0, k_max_idempotency_key_bytes),
                          .reason = std::move(reason),
                          .detail = std::move(detail)});
  }

  // Checks one event; nullopt (and a rejection in `out`) when it is refused.
  // Moves the event's texts into the result.
  std::optional<Parsed> check(IngestResult& out, std::size_t index, UsageEvent& e, std::int64_t now) {
    if (!valid_idempotency_key(e.idempotency_key)) {
      reject(out, index, e, "invalid_idempotency_key", "idempotency_key is required: 1-255 printable ASCII characters");
      return std::nullopt;
    }
    if (!valid_metric_name(e.metric)) {
      reject(out, index, e, "invalid_metric",
             "metric is required: 1-64 letters, digits, '_', '-', '.', ':' or "
             "'/', starting with a letter or digit");
      return std::nullopt;
    }
    if (e.quantity < 0 || e.quantity > k_max_quantity) {
      reject(out, index, e, "invalid_quantity", "quantity must be between 0 and 1000000000000");
      return std::nullopt;
    }
    const std::int64_t ts = unix_ms(e.timestamp);
    if (ts < now - settings.max_event_age.count()) {
      reject(out, index, e, "too_old",
             fmt::format("timestamp is more than {} hours old: too old for any "
                         "open period",
                         std::chrono::floor<std::chrono::hours>(settings.max_event_age).count()));
      return std::nullopt;
    }
    if (ts > now + settings.max_future.count()) {
      reject(out, index, e, "too_far_in_future",
             fmt::format("timestamp is more than {} seconds in the future",
                         std::chrono::floor<std::chrono::seconds>(settings.max_future).count()));
      return std::nullopt;
    }
    if (e.properties.size() > k_max_properties_bytes) {
      reject(out, index, e, "invalid_properties", "properties exceed 4096 bytes");
      return std::nullopt;
    }
    if (!e.user_id.empty() && !valid_idempotency_key(e.user_id)) {
      reject(out, index, e, "invalid_user_id", "user_id must be 1-255 printable ASCII characters");
      return std::nullopt;
    }
    return Parsed{.index = index,
                  .key = std::move(e.idempotency_key),
                  .metric = std::move(e.metric),
                  .quantity = e.quantity,
                  .ts = ts,
                  .properties = e.properties.empty() ? std::string("{}") : std::move(e.properties),
                  .user_id = std::move(e.user_id)};
  }

  // The query that measures `metric` over [from, to) with its meter (sum when it has none), read in `tx`.
  Result<SummaryQuery> meter_query(TenantTransaction& tx, const std::string& metric, std::int64_t from,
                                   std::int64_t to) {
    SummaryQuery q{.metric = metric, .from = from_unix_ms(from), .to = from_unix_ms(to)};
    storage::Transaction* control = tx.control_plane();
    if (!control) return fail(Errc::internal, "metering needs a control-plane transaction");
    auto rs = control->execute(k_meter_find, {Value(metric)});
    if (!rs) return std::unexpected(rs.error());
    if (!rs->empty()) {
      auto m = meter_from_row(*rs, 0);
      if (!m) return std::unexpected(m.error());
      q.aggregation = m->aggregation;
      q.property = m->property;
      q.filters = std::move(m->filters);
    }
    return q;
  }

  // One value for the whole of q's range (0 over no events).
  Result<std::int64_t> value(TenantTransaction& tx, const SummaryQuery& q) {
    const std::vector<std::int64_t> starts{unix_ms(q.from)};
    std::vector<std::map<std::string, Acc, std::less<>>> acc(1);
    std::map<std::string, Json, std::less<>> group_values;
    if (auto r = accumulate(tx, q, starts, acc, group_values); !r) return std::unexpected(r.error());
    auto it = acc[0].find("");
    if (it == acc[0].end()) return 0;
    return value_of(it->second, q.aggregation).value_or(0);
  }

  // The hard limits on the batch's metrics, each with its value so far, read in the ingest transaction.
  Result<std::map<std::string, std::vector<Guard>, std::less<>>> guards(TenantTransaction& tx,
                                                                        const std::vector<Parsed>& batch) {
    std::map<std::string, std::vector<Guard>, std::less<>> out;
    if (!hooks.hard_limits) return out;
    auto limits = hooks.hard_limits(tx);
    if (!limits) return std::unexpected(limits.error());
    if (limits->empty()) return out;
    std::vector<std::string> metrics;
    for (const Parsed& p : batch) {
      if (limits->contains(p.metric)) metrics.push_back(p.metric);
    }
    std::sort(metrics.begin(), metrics.end());  // locks in one order: no deadlock between two batches
    metrics.erase(std::unique(metrics.begin(), metrics.end()), metrics.end());
    for (const std::string& metric : metrics) {
      if (tx.backend() == storage::Backend::postgres) {
        auto locked = tx.control_plane()->execute(k_quota_lock, {Value("quota:" + tx.tenant_id() + ":" + metric)});
        if (!locked) return std::unexpected(locked.error());
      }
      auto [first, last] = limits->equal_range(metric);
      for (auto l = first; l != last; ++l) {
        // A period none of the batch's events falls in (usually the previous one) is not measured.
        const bool needed = std::any_of(batch.begin(), batch.end(), [&](const Parsed& p) {
          return p.metric == metric && p.ts >= unix_ms(l->second.from) && p.ts < unix_ms(l->second.to);
        });
        if (!needed) continue;
        auto q = meter_query(tx, metric, unix_ms(l->second.from), unix_ms(l->second.to));
        if (!q) return std::unexpected(q.error());
        Guard g{.limit = l->second, .aggregation = q->aggregation, .filters = q->filters};
        if (g.aggregation != Aggregation::unique_count) {
          auto used = value(tx, *q);
          if (!used) return std::unexpected(used.error());
          g.used = *used;
        }
        out[metric].push_back(std::move(g));
      }
    }
    return out;
  }

  // Accumulates `q` over the windows starting at `starts` into `acc` (cleared first), read in `tx`.
  Result<void> accumulate(TenantTransaction& tx, const SummaryQuery& q, const std::vector<std::int64_t>& starts,
                          std::vector<std::map<std::string, Acc, std::less<>>>& acc,
                          std::map<std::string, Json, std::less<>>& group_values) {
    const bool rollups = q.group_by.empty() && q.filters.empty() && q.aggregation != Aggregation::unique_count;
    for (auto& a : acc) a.clear();
    group_values.clear();
    // Whole hours come from the roll-ups; the partial hours at either end
    // from the raw events.
    const std::int64_t from = unix_ms(q.from);
    const std::int64_t to = unix_ms(q.to);
    const std::int64_t first_hour = floor_div(from + k_hour_ms - 1, k_hour_ms) * k_hour_ms;
    const std::int64_t last_hour = floor_div(to, k_hour_ms) * k_hour_ms;
    if (!rollups || first_hour >= last_hour) {
      return scan_raw(tx, q, from, to, starts, acc, group_values);
    }
    if (auto e = scan_raw(tx, q, from, first_hour, starts, acc, group_values); !e) return e;
    if (auto e = scan_raw(tx, q, last_hour, to, starts, acc, group_values); !e) return e;
    auto rs = tx.execute(k_rollups_range, {Value(q.metric), Value(first_hour), Value(last_hour)});
    if (!rs) return std::unexpected(rs.error());
    for (std::size_t i = 0; i < rs->rows.size(); ++i) {
      const std::int64_t hour = rs->int_at(i, 0).value_or(0);
      Delta d;
      d.count = rs->int_at(i, 1).value_or(0);
      d.sum = rs->int_at(i, 2).value_or(0);
      d.max = rs->int_at(i, 3).value_or(0);
      d.latest_ts = rs->int_at(i, 4).value_or(0);
      d.latest_value = rs->int_at(i, 5).value_or(0);
      const auto w =
          static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), hour) - starts.begin() - 1);
      acc[w][""].d.merge(d);
    }
    return {};
  }

  // Reads [from, to) into `acc`, one slot per window start in `starts` (sorted)
  // and per group.
  Result<void> scan_raw(TenantTransaction& tx, const SummaryQuery& q, std::int64_t from, std::int64_t to,
                        const std::vector<std::int64_t>& starts,
                        std::vector<std::map<std::string, Acc, std::less<>>>& acc,
                        std::map<std::string, Json, std::less<>>& group_values) {
    if (from >= to) return {};
    const bool need_props = !q.group_by.empty() || !q.filters.empty() || q.aggregation == Aggregation::unique_count;
    auto rs = tx.execute(need_props ? k_events_range_props : k_events_range, {Value(q.metric), Value(from), Value(to)});
    if (!rs) return std::unexpected(rs.error());
    Json props = Json::object();
    for (std::size_t i = 0; i < rs->rows.size(); ++i) {
      const std::int64_t ts = rs->int_at(i, 0).value_or(0);
      const std::int64_t quantity = rs->int_at(i, 1).value_or(0);
      if (need_props) {
        auto text = open_properties(tx, rs->text_at(i, 3).value_or(""), rs->text_at(i, 2).value_or("{}"));
        if (!text) return std::unexpected(text.error());
        std::string error;
        auto parsed = parse_json(*text, JsonLimits{}, &error);
        props = parsed && parsed->is_object() ? std::move(*parsed) : Json::object();
        if (!matches(props, q.filters)) continue;
      }
      const auto w = static_cast<std::size_t>(std::upper_bound(starts.begin(), starts.end(), ts) - starts.begin() - 1);
      std::string group;
      if (!q.group_by.empty()) {
        auto it = props.find(q.group_by);
        const Json value = it == props.end() ? Json(nullptr) : *it;
        group = value.dump();
        if (!group_values.contains(group)) group_values.emplace(group, value);
      }
      Acc& a = acc[w][group];
      a.d.add(ts, quantity);
      if (q.aggregation == Aggregation::unique_count) {
        auto it = props.find(q.property);
        if (it != props.end() && !it->is_null()) a.distinct.insert(it->dump());
      }
    }
    return {};
  }
};

Metering::Metering(storage::Database& control, tenancy::TenantData& data, audit::AuditLog& audit, const Clock& clock,
                   metrics::Registry& registry, Settings settings) {
  auto& family = registry.counter("atrium_usage_events_total",
                                  "Usage events received, by outcome "
                                  "(accepted, duplicate, rejected) and, for "
                                  "rejected ones, reason.",
                                  {"outcome", "reason"});
  impl_ = std::make_unique<Impl>(Impl{control, data, audit, clock, settings, family.with({"accepted", ""}),
                                      family.with({"duplicate", ""}), family});
}

Metering::~Metering() = default;

const Settings& Metering::settings() const { return impl_->settings; }

std::vector<tenancy::TenantStatement> Metering::tenant_statements() {
  return {k_tenant_statements.begin(), k_tenant_statements.end()};
}

std::vector<tenancy::TenantStatement> Metering::purge_statements() {
  return {{"metering_purge_events", "DELETE FROM usage_events WHERE tenant_id = $1"},
          {"metering_purge_rollups", "DELETE FROM usage_rollups WHERE tenant_id = $1"}};
}

Result<IngestResult> Metering::ingest(const std::string& tenant_id, UsageBatch batch) {
  Impl& s = *impl_;
  if (batch.empty()) return fail(Errc::invalid_argument, "events must not be empty");
  if (batch.size() > s.settings.max_batch) {
    return fail(Errc::invalid_argument, fmt::format("a batch holds at most {} events", s.settings.max_batch));
  }
  IngestResult out;
  const std::int64_t now = s.now_ms();
  std::vector<Parsed> valid;
  valid.reserve(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].event) {
      Rejection r = std::move(batch[i].unreadable);
      r.index = i;
      s.reject(out, std::move(r));
    } else if (auto p = s.check(out, i, *batch[i].event, now)) {
      valid.push_back(std::move(*p));
    }
  }
  // Inserted in key order, so two batches that share keys lock them in the same
  // order (no deadlock on PostgreSQL). A key repeated within the batch is a
  // duplicate of its first occurrence (stable: the first stays first).
  std::stable_sort(valid.begin(), valid.end(), [](const Parsed& a, const Parsed& b) { return a.key < b.key; });
  std::vector<std::pair<std::string, std::size_t>> repeats;  // (key, index) of keys repeated within the batch
  {
    std::vector<Parsed> first;
    first.reserve(valid.size());
    for (Parsed& p : valid) {
      if (!first.empty() && first.back().key == p.key) {
        repeats.emplace_back(p.key, p.index);
      } else {
        first.push_back(std::move(p));
      }
    }
    valid = std::move(first);
  }

  bool seal = false;
  if (s.tenant_ingestion && !valid.empty()) {
    auto asked = s.tenant_ingestion(tenant_id);
    if (!asked) return std::unexpected(asked.error());
    seal = asked->seal_properties;
  }

  std::int64_t in_batch_duplicates = static_cast<std::int64_t>(repeats.size());
  std::int64_t inserted = 0;
  std::vector<std::size_t> accepted_indices;
  std::vector<Rejection> over_quota;
  std::vector<std::string> touched;
  if (!valid.empty()) {
    auto r = s.data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      inserted = 0;  // the body runs again after a serialization failure
      accepted_indices.clear();
      over_quota.clear();
      for (Parsed& p : valid) {
        if (!seal || p.properties == k_no_properties) {
          p.stored = p.properties;
          continue;
        }
        auto sealed = tx.seal(k_properties_field, p.key, p.properties);
        if (!sealed) return std::unexpected(sealed.error());
        p.stored = std::move(*sealed);
      }
      auto guards = s.guards(tx, valid);
      if (!guards) return std::unexpected(guards.error());
      std::map<std::pair<std::string_view, std::int64_t>, Delta> deltas;
      const auto accept = [&](const Parsed& p) {
        ++inserted;
        accepted_indices.push_back(p.index);
        deltas[{p.metric, floor_div(p.ts, k_hour_ms) * k_hour_ms}].add(p.ts, p.quantity);
      };
      // PostgreSQL, no hard quota on the batch's metrics: every event in one statement. A hard quota is checked
      // event by event below, in key order.
      const bool set_based =
          tx.backend() == storage::Backend::postgres &&
          std::none_of(valid.begin(), valid.end(), [&](const Parsed& p) { return guards->contains(p.metric); });
      if (set_based) {
        auto stored = tx.execute(k_event_insert_batch, {Value(now), Value(batch_rows(valid))});
        if (!stored) return std::unexpected(stored.error());
        std::unordered_set<std::string> fresh;
        fresh.reserve(stored->rows.size());
        for (std::size_t r = 0; r < stored->rows.size(); ++r) fresh.insert(stored->text_at(r, 0).value_or(""));
        for (const Parsed& p : valid) {
          if (fresh.contains(p.key)) accept(p);
        }
      }
      for (const Parsed& p : set_based ? std::span<const Parsed>{} : std::span<const Parsed>(valid)) {
        Guard* g = nullptr;
        if (auto it = guards->find(p.metric); it != guards->end()) {
          for (Guard& candidate : it->second) {
            if (candidate.covers(p)) g = &candidate;
          }
        }
        if (g && g->over(p)) {
          // A retry of an event stored before the quota filled up is still a duplicate, not a refusal.
          auto known = tx.execute(k_event_exists, {Value(p.key)});
          if (!known) return std::unexpected(known.error());
          if (!known->empty()) continue;
          over_quota.push_back(
              Rejection{.index = p.index,
                        .idempotency_key = p.key,
                        .reason = "quota_exceeded",
                        .detail = fmt::format("the hard quota {} allows {} in the period that starts at {}; {} is used",
                                              g->limit.quota, g->limit.limit, format_rfc3339(g->limit.from), g->used),
                        .quota = g->limit.quota,
                        .room = g->aggregation == Aggregation::sum
                                    ? std::optional<std::int64_t>(std::max<std::int64_t>(0, g->limit.limit - g->used))
                                    : std::nullopt});
          continue;
        }
        auto ins =
            tx.execute(k_event_insert, {Value(p.key), Value(p.metric), Value(p.quantity), Value(p.ts), Value(p.stored),
                                        Value(now), p.user_id.empty() ? Value() : Value(p.user_id)});
        if (!ins) return std::unexpected(ins.error());
        if (ins->affected_rows == 0) continue;
        if (g) g->add(p);
        accept(p);
      }
      touched.clear();
      for (const auto& [key, d] : deltas) {
        if (touched.empty() || touched.back() != key.first) touched.emplace_back(key.first);
        auto up = tx.execute(k_rollup_upsert, {Value(std::string(key.first)), Value(key.second), Value(d.count),
                                               Value(d.sum), Value(d.max), Value(d.latest_ts), Value(d.latest_value)});
        if (!up) return std::unexpected(up.error());
      }
      return {};
    });
    if (!r) return std::unexpected(r.error());
  }
  const auto refused = static_cast<std::int64_t>(over_quota.size());
  // A repeat of a refused key is refused with it (nothing of that key was stored, so it duplicates nothing).
  if (!over_quota.empty()) {
    for (const auto& [key, index] : repeats) {
      auto it = std::find_if(over_quota.begin(), over_quota.begin() + refused,
                             [&](const Rejection& r) { return r.idempotency_key == key; });
      if (it == over_quota.begin() + refused) continue;
      Rejection copy = *it;
      copy.index = index;
      over_quota.push_back(std::move(copy));
      --in_batch_duplicates;
    }
  }
  for (auto& rejection : over_quota) {
    s.events.with({"rejected", rejection.reason}).inc();
    out.rejected.push_back(std::move(rejection));
  }
  std::sort(out.rejected.begin(), out.rejected.end(),
            [](const Rejection& a, const Rejection& b) { return a.index < b.index; });
  out.accepted = inserted;
  std::sort(accepted_indices.begin(), accepted_indices.end());
  out.accepted_indices = std::move(accepted_indices);
  out.duplicates = in_batch_duplicates + static_cast<std::int64_t>(valid.size()) - inserted - refused;
  if (out.accepted > 0) s.accepted.inc(static_cast<double>(out.accepted));
  if (out.duplicates > 0) s.duplicates.inc(static_cast<double>(out.duplicates));
  if (inserted > 0 && s.hooks.after_ingest) s.hooks.after_ingest(tenant_id, touched);
  return out;
}

Result<std::int64_t> Metering::measure(TenantTransaction& tx, const std::string& metric, Instant from, Instant to) {
  Impl& s = *impl_;
  if (from >= to) return 0;
  auto q = s.meter_query(tx, metric, unix_ms(from), unix_ms(to));
  if (!q) return std::unexpected(q.error());
  return s.value(tx, *q);
}

void Metering::set_quota_hooks(QuotaHooks hooks) { impl_->hooks = std::move(hooks); }

void Metering::set_tenant_ingestion(std::function<Result<TenantIngestion>(const std::string& tenant_id)> ingestion) {
  impl_->tenant_ingestion = std::move(ingestion);
}

std::vector<tenancy::SealedColumn> Metering::sealed_columns() {
  return {{.field = k_properties_field,
           .select = k_properties_page,
           .update = k_properties_update,
           .control_plane = true,
           .page_rows = 1000,
           .opted_in = [](const tenancy::Tenant& t) { return t.settings.encrypt_event_properties; }}};
}

Result<std::string> open_properties(TenantTransaction& tx, std::string_view key, std::string stored) {
  if (!tenancy::is_sealed(stored)) return stored;
  return tx.open(k_properties_field, key, stored);
}

Result<std::vector<SummaryRow>> Metering::summarize(const std::string& tenant_id, const SummaryQuery& q) {
  Impl& s = *impl_;
  if (!valid_metric_name(q.metric)) return fail(Errc::invalid_argument, "metric is required and must be a metric name");
  if (q.from >= q.to) return fail(Errc::invalid_argument, "from must be before to");
  if (q.aggregation == Aggregation::unique_count && !valid_property_name(q.property)) {
    return fail(Errc::invalid_argument, "unique_count needs the property whose distinct values it counts");
  }
  if (!q.group_by.empty() && !valid_property_name(q.group_by)) {
    return fail(Errc::invalid_argument, "group_by must be a property name of 1-128 bytes");
  }
  // Window starts: the first is `from` itself; the others are the UTC
  // boundaries after it.
  std::vector<std::int64_t> starts{unix_ms(q.from)};
  if (q.window != Window::none) {
    for (std::int64_t b = next_window_start_ms(window_start_ms(unix_ms(q.from), q.window), q.window); b < unix_ms(q.to);
         b = next_window_start_ms(b, q.window)) {
      if (starts.size() >= s.settings.max_rows) {
        return fail(Errc::invalid_argument,
                    fmt::format("the range holds more than {} windows; use a larger window", s.settings.max_rows));
      }
      starts.push_back(b);
    }
  }
  std::vector<std::map<std::string, Acc, std::less<>>> acc(starts.size());
  std::map<std::string, Json, std::less<>> group_values;
  storage::TransactionOptions ro;
  ro.read_only = true;
  auto r = s.data.transact_control_plane(
      tenant_id, [&](TenantTransaction& tx) { return s.accumulate(tx, q, starts, acc, group_values); }, ro);
  if (!r) return std::unexpected(r.error());

  std::vector<SummaryRow> rows;
  for (std::size_t w = 0; w < starts.size(); ++w) {
    const std::int64_t end = w + 1 < starts.size() ? starts[w + 1] : unix_ms(q.to);
    if (q.group_by.empty()) {
      static const Acc empty;
      auto it = acc[w].find("");
      rows.push_back({from_unix_ms(starts[w]), from_unix_ms(end), std::nullopt,
                      value_of(it == acc[w].end() ? empty : it->second, q.aggregation)});
      continue;
    }
    for (const auto& [group, a] : acc[w]) {
      if (rows.size() >= s.settings.max_rows) {
        return fail(Errc::invalid_argument, fmt::format("the summary has more than {} rows; narrow the "
                                                        "range or use a larger window",
                                                        s.settings.max_rows));
      }
      rows.push_back({from_unix_ms(starts[w]), from_unix_ms(end), group_values.at(group), value_of(a, q.aggregation)});
    }
  }
  return rows;
}

Result<std::int64_t> Metering::aggregate(const std::string& tenant_id, const std::string& metric,
                                         Aggregation aggregation, Instant from, Instant to, const Filters& filters,
                                         const std::string& property) {
  SummaryQuery q{
      .metric = metric, .aggregation = aggregation, .property = property, .filters = filters, .from = from, .to = to};
  auto rows = summarize(tenant_id, q);
  if (!rows) return std::unexpected(rows.error());
  return rows->empty() ? 0 : rows->front().value.value_or(0);
}

Result<Meter> Metering::create_meter(const Meter& input, const audit::Context& who) {
  Impl& s = *impl_;
  Meter m = input;
  if (!valid_metric_name(m.metric)) {
    return fail(Errc::invalid_argument, "metric is required: 1-64 letters, digits, '_', '-', '.', ':' or '/'");
  }
  if (m.name.empty()) m.name = m.metric;
  if (m.name.size() > 200) return fail(Errc::invalid_argument, "name must be a string of 1-200 bytes");
  if (!m.property.empty() && !valid_property_name(m.property)) {
    return fail(Errc::invalid_argument, "property must be a property name of 1-128 bytes");
  }
  if (m.aggregation == Aggregation::unique_count && m.property.empty()) {
    return fail(Errc::invalid_argument, "property is required for unique_count");
  }
  if (m.aggregation != Aggregation::unique_count && !m.property.empty()) {
    return fail(Errc::invalid_argument, "property is only for unique_count");
  }
  if (auto f = parse_filters(filters_json(m.filters)); !f) return std::unexpected(f.error());
  m.id = new_uuid_v7(s.clock);
  m.created_at = std::chrono::floor<std::chrono::milliseconds>(s.clock.now());  // as stored
  auto r = s.control.transact([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_meter_insert, {Value(m.id), Value(m.metric), Value(m.name),
                                           Value(std::string(aggregation_name(m.aggregation))), Value(m.property),
                                           Value(filters_json(m.filters).dump()), Value(unix_ms(m.created_at))});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) return fail(Errc::conflict, "the metric already has a meter");
      return std::unexpected(ins.error());
    }
    audit::Event e{.action = "meter.created", .resource_type = "meter", .resource_id = m.id};
    e.changes = audit::created_changes(to_json(m));
    return s.audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return m;
}

Result<std::vector<Meter>> Metering::list_meters() {
  return storage::transact_value<std::vector<Meter>>(impl_->control,
                                                     [&](Transaction& tx) -> Result<std::vector<Meter>> {
                                                       auto rs = tx.execute(k_meter_list);
                                                       if (!rs) return std::unexpected(rs.error());
                                                       std::vector<Meter> out;
                                                       for (std::size_t i = 0; i < rs->rows.size(); ++i) {
                                                         auto m = meter_from_row(*rs, i);
                                                         if (!m) return std::unexpected(m.error());
                                                         out.push_back(std::move(*m));
                                                       }
                                                       return out;
                                                     },
                                                     {.read_only = true});
}

Result<std::optional<Meter>> Metering::find_meter(const std::string& metric) {
  return storage::transact_value<std::optional<Meter>>(impl_->control,
                                                       [&](Transaction& tx) -> Result<std::optional<Meter>> {
                                                         auto rs = tx.execute(k_meter_find, {Value(metric)});
                                                         if (!rs) return std::unexpected(rs.error());
                                                         if (rs->rows.empty()) return std::optional<Meter>();
                                                         auto m = meter_from_row(*rs, 0);
                                                         if (!m) return std::unexpected(m.error());
                                                         return std::optional<Meter>(std::move(*m));
                                                       },
                                                       {.read_only = true});
}

Result<std::int64_t> Metering::expire(const std::string& tenant_id) {
  Impl& s = *impl_;
  const std::int64_t cutoff = s.now_ms() - s.settings.retain_events.count();
  std::int64_t deleted = 0;
  auto r = s.data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto rs = tx.execute(k_events_expire, {Value(cutoff)});
    if (!rs) return std::unexpected(rs.error());
    deleted = rs->affected_rows;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return deleted;
}

Result<std::vector<std::string>> Metering::tenants_with_usage(Instant from, Instant to) {
  std::vector<std::string> out;
  auto r = impl_->data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        out.clear();
        auto rs = ptx.control().execute(k_tenants_with_usage, {Value(unix_ms(from)), Value(unix_ms(to))});
        if (!rs) return std::unexpected(rs.error());
        for (std::size_t i = 0; i < rs->rows.size(); ++i) out.push_back(rs->text_at(i, 0).value_or(""));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace atrium::metering
