#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit/audit_log.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::metering {

// Usage metering: tenants report usage events (metric, integer quantity, time,
// idempotency key, properties); Atrium stores each once, folds it into hourly
// roll-ups in the same transaction, and aggregates them per window for the
// summary API and for billing. Events and roll-ups live in the control plane
// (like billing, whatever the tenant's isolation level) and are read and
// written through the tenant-scoped transaction. Times are core's Instant,
// stored as Unix milliseconds (finer digits are dropped). Thread-safe.

enum class Aggregation { sum, count, max, unique_count, latest };
std::string_view aggregation_name(Aggregation a);
std::optional<Aggregation> parse_aggregation(std::string_view text);

// Summary windows, aligned to UTC hours, days and calendar months; `none` is
// one window over the whole range.
enum class Window { none, hour, day, month };
std::optional<Window> parse_window(std::string_view text);

// Metric names: 1-64 letters, digits, '_', '-', '.', ':' or '/', starting with a letter or digit.
bool valid_metric_name(std::string_view metric);
// Idempotency keys: 1-255 printable ASCII characters (k_max_idempotency_key_bytes, below).
bool valid_idempotency_key(std::string_view key);
// Property names (meters, filters): 1-128 bytes.
bool valid_property_name(std::string_view name);

// property -> value: an event counts only when each named property equals the
// value (JSON equality).
using Filters = std::map<std::string, Json, std::less<>>;
// {"property": value, ...}: names of 1-128 bytes, values strings, numbers or booleans (invalid_argument otherwise).
Result<Filters> parse_filters(const Json& value);

struct Settings {
  std::chrono::milliseconds max_event_age = std::chrono::days(35);  // older events are rejected (too_old)
  std::chrono::milliseconds max_future = std::chrono::minutes(5);   // further ahead: rejected (too_far_in_future)
  std::chrono::milliseconds retain_events =
      std::chrono::days(430);      // raw events (and so their keys) are kept this long
  std::size_t max_batch = 10'000;  // events per request
  std::size_t max_rows = 10'000;   // windows x groups in one summary
};

// Why one event of a batch was refused. The code is stable (clients branch on
// it); the detail is for people.
struct Rejection {
  std::size_t index = 0;
  std::string idempotency_key;  // as sent, when it was a string
  std::string reason;           // invalid_event | invalid_metric | invalid_quantity |
                                // invalid_timestamp | invalid_idempotency_key |
                                // invalid_properties | invalid_user_id | too_old | too_far_in_future |
                                // quota_exceeded
  std::string detail;
  std::string quota;  // quota_exceeded: the quota's name
  // quota_exceeded on a sum meter: how much quantity still fits in the period (internal; not in the JSON).
  std::optional<std::int64_t> room;
};

// One usage event as reported: POST /v1/usage decoded by the API, or counted by Atrium itself (api_calls).
struct UsageEvent {
  std::string idempotency_key;  // 1-255 printable ASCII characters
  std::string metric;
  std::int64_t quantity = 0;  // 0 to 10^12
  Instant timestamp{};
  std::string properties = "{}";  // a JSON object's text, at most 4096 bytes
  std::string user_id;            // whom a product event is about (docs/analytics.md): "" or 1-255 printable ASCII
};

// One entry of a batch: an event, or why it could not be read (reason and detail; ingest rejects it at its index
// like an event that breaks a rule).
struct UsageEntry {
  std::optional<UsageEvent> event;
  Rejection unreadable;
};
using UsageBatch = std::vector<UsageEntry>;  // 1 to Settings::max_batch entries

// The longest idempotency key a rejection echoes back.
inline constexpr std::size_t k_max_idempotency_key_bytes = 255;

struct IngestResult {
  std::int64_t accepted = 0;    // stored now, counted from now on
  std::int64_t duplicates = 0;  // the tenant already sent this idempotency key
                                // (earlier, or earlier in the batch)
  std::vector<Rejection> rejected;
  std::vector<std::size_t> accepted_indices;  // the batch positions of the accepted events, ascending (not in JSON)
};
Json to_json(const IngestResult& r);

struct Meter {
  std::string id;
  std::string metric;
  std::string name;
  Aggregation aggregation = Aggregation::sum;
  std::string property;  // unique_count: the property whose distinct values are counted
  Filters filters;
  Instant created_at{};
};
Json to_json(const Meter& m);

struct SummaryQuery {
  std::string metric;
  Aggregation aggregation = Aggregation::sum;
  std::string property;  // for unique_count
  Filters filters;
  Instant from{};  // inclusive
  Instant to{};    // exclusive
  Window window = Window::none;
  std::string group_by;  // a property name; "" = no grouping
};

// One window (and group). Without group_by every window is listed; with it,
// only the groups seen in the window.
struct SummaryRow {
  Instant start{};
  Instant end{};
  std::optional<Json> group;  // the group_by property's value (null when an event lacks it)
  // sum, count and unique_count are 0 over no events; max and latest are
  // nullopt.
  std::optional<std::int64_t> value;
};

// A hard quota on a metric over one period, as ingestion enforces it: an event stamped in [from, to) is
// refused (quota_exceeded) when counting it would take the metric's aggregate over that range beyond `limit`. sum
// and count add the event; max and latest refuse an event whose quantity exceeds the limit; unique_count is not
// enforced here. A metric may have a limit for the current period and one for the previous (late events).
struct HardLimit {
  std::string quota;
  std::int64_t limit = 0;
  Instant from{};
  Instant to{};
};
using HardLimits = std::multimap<std::string, HardLimit, std::less<>>;  // metric -> limits (disjoint ranges)

struct QuotaHooks {
  // The tenant's hard limits, read inside the ingest transaction (once per batch that has valid events).
  std::function<Result<HardLimits>(tenancy::TenantTransaction&)> hard_limits;
  // After a batch with accepted events committed: the metrics it added to (threshold checks). Must not throw.
  std::function<void(const std::string& tenant_id, const std::vector<std::string>& metrics)> after_ingest;
};

// The properties of usage and product events, encrypted at rest (with the tenant's data key, bound to the event's
// idempotency key) for tenants that opt in (TenantSettings::encrypt_event_properties; docs/data-protection.md).
// Every reader of usage_events.properties opens them with open_properties.
inline constexpr tenancy::SealedField k_properties_field{"usage_events", "properties"};
// An event's properties (JSON text) from their stored form; `key` is the event's idempotency key.
Result<std::string> open_properties(tenancy::TenantTransaction& tx, std::string_view key, std::string stored);

class Metering {
 public:
  // `control` is the control-plane database, `data` scopes tenant transactions,
  // `registry` receives atrium_usage_events_total. All must outlive this
  // object.
  Metering(storage::Database& control, tenancy::TenantData& data, audit::AuditLog& audit, const Clock& clock,
           metrics::Registry& registry, Settings settings);
  ~Metering();

  // A batch of 1 to max_batch entries (invalid_argument otherwise, nothing stored). Each event is accepted, a
  // duplicate, or rejected on its own. Accepted events and their roll-ups are committed in one transaction before
  // this returns (all or none: an error means nothing of the batch was stored, and the client retries it with the
  // same keys).
  Result<IngestResult> ingest(const std::string& tenant_id, UsageBatch batch);

  // The summary: rows in window order (then group order, by the group value's
  // JSON text). invalid_argument for an empty or reversed range, more than
  // max_rows windows or rows, unique_count without a property.
  Result<std::vector<SummaryRow>> summarize(const std::string& tenant_id, const SummaryQuery& query);

  // One number for [from, to): what billing prices. `property` names what
  // unique_count counts. Max and latest over no events are 0.
  Result<std::int64_t> aggregate(const std::string& tenant_id, const std::string& metric, Aggregation aggregation,
                                 Instant from, Instant to, const Filters& filters = {},
                                 const std::string& property = {});

  // The metric's value over [from, to) with its meter's aggregation, property and filters (sum when it has
  // no meter), read in `tx`, a control-plane transaction scoped to the tenant (billing prices it at renewal).
  // Max and latest over no events are 0.
  Result<std::int64_t> measure(tenancy::TenantTransaction& tx, const std::string& metric, Instant from, Instant to);

  // Installs the quota hooks (billing::Entitlements). Call before ingesting; not synchronized with ingest.
  void set_quota_hooks(QuotaHooks hooks);
  // How a tenant's events are taken, asked once per batch (the platform's answer comes from the tenant directory).
  // An error refuses the batch: the platform's is `not_found` for a deleted tenant, whose usage is no longer
  // recorded. Without the hook every tenant's events are taken, none sealed. Call before ingesting; not synchronized
  // with ingest.
  struct TenantIngestion {
    bool seal_properties = false;  // its event properties are encrypted at rest (its settings)
  };
  void set_tenant_ingestion(std::function<Result<TenantIngestion>(const std::string& tenant_id)> ingestion);

  // Meter catalog (platform). `input.id` and `created_at` are set here; `name` defaults to the metric.
  // invalid_argument naming the field, conflict when the metric already has a meter.
  Result<Meter> create_meter(const Meter& input, const audit::Context& who);
  Result<std::vector<Meter>> list_meters();
  // The metric's meter; nullopt when it has none.
  Result<std::optional<Meter>> find_meter(const std::string& metric);

  // Deletes the tenant's raw events older than retain_events (their roll-ups
  // stay). Safe for deduplication as long as max_event_age <=
  // retain_events: a retry of a deleted event is too old to be accepted
  // anyway. Returns the number deleted.
  Result<std::int64_t> expire(const std::string& tenant_id);
  // The tenants with usage roll-ups in the hours [from, to): every tenant that may hold raw events stamped then
  // (platform scope, through the roll-ups' hour index: O(roll-ups in the range), not O(tenants)).
  Result<std::vector<std::string>> tenants_with_usage(Instant from, Instant to);

  const Settings& settings() const;

  // Every tenant statement, for the test that checks their names are unique.
  static std::vector<tenancy::TenantStatement> tenant_statements();
  // What purging a tenant deletes: its raw usage events and rollups (`tenant_id = $1`, in its control-plane
  // transaction).
  static std::vector<tenancy::TenantStatement> purge_statements();
  // usage_events.properties for re-encryption (protection::reencrypt), in pages: plaintext is sealed only for
  // tenants that opted in.
  static std::vector<tenancy::SealedColumn> sealed_columns();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Start of the UTC window holding `t` and the start of the next one
// (Window::none: not meaningful).
Instant window_start(Instant t, Window w);
Instant next_window_start(Instant start, Window w);

}  // namespace atrium::metering
