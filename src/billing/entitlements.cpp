#include "billing/entitlements.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "core/log.hpp"
#include "events/outbox.hpp"

namespace atrium::billing {

namespace {

using storage::Statement;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr Statement k_tenant_plan{"entitlements_tenant_plan", "SELECT plan FROM tenants WHERE id = $1"};
constexpr TenantStatement k_notice_insert{
    "quota_notice_insert",
    "INSERT INTO quota_notices (tenant_id, name, period_start, threshold, used, limit_value, created_at) VALUES ($1, "
    "$2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, name, period_start, threshold) DO NOTHING"};
constexpr TenantStatement k_notices{"quota_notices_of_period",
                                    "SELECT name, threshold FROM quota_notices WHERE tenant_id = $1 AND period_start = "
                                    "$2 ORDER BY name, threshold"};
constexpr std::array<TenantStatement, 2> k_notice_statements{k_notice_insert, k_notices};

constexpr std::array<int, 2> k_thresholds{80, 100};
constexpr std::size_t k_max_cached = 100'000;
constexpr Instant k_open_end = Instant::max();  // usage of an overdue period counts without an end

// Whether `used` reaches `threshold` percent of `limit` (exact: 128-bit products). Nothing used reaches nothing.
bool reaches(std::int64_t used, std::int64_t limit, int threshold) {
  if (used <= 0) return false;
  return static_cast<__int128>(used) * 100 >= static_cast<__int128>(limit) * threshold;
}

// What applies to one tenant now.
struct Context {
  std::vector<Quota> quotas;
  Instant from{};
  Instant to{};                          // what usage counts until: the period's end, or open while it is overdue
  Instant period_end{};                  // as the subscription says
  std::optional<Instant> previous_from;  // the previous period [previous_from, from), when known
  Instant cache_until{};
  std::string source;
  std::optional<std::string> subscription_id;
  std::optional<std::string> plan;
  std::chrono::steady_clock::time_point loaded{};
};

const Quota* find_quota(const Context& c, const std::string& name) {
  auto it = std::find_if(c.quotas.begin(), c.quotas.end(), [&](const Quota& q) { return q.name == name; });
  return it == c.quotas.end() ? nullptr : &*it;
}

Json quota_json(const Quota& q) {
  return {{"metric", q.metric.empty() ? Json(nullptr) : Json(q.metric)},
          {"limit", limit_json(q.limit)},
          {"enforcement", enforcement_name(q.enforcement)}};
}

}  // namespace

Json to_json(const Entitlement& e) {
  const Quota& q = e.quota;
  Json j = {{"name", q.name},
            {"metric", q.metric.empty() ? Json(nullptr) : Json(q.metric)},
            {"limit", limit_json(q.limit)},
            {"enforcement", enforcement_name(q.enforcement)},
            {"source", q.source},
            {"used", e.used},
            {"remaining", q.limit ? Json(std::max<std::int64_t>(0, *q.limit - e.used)) : Json(nullptr)},
            {"percent_used", nullptr},
            {"notified", e.notified}};
  if (q.limit && *q.limit > 0) {
    j["percent_used"] = static_cast<std::int64_t>(static_cast<__int128>(e.used) * 100 / *q.limit);
  }
  return j;
}

Json to_json(const EntitlementView& v) {
  Json data = Json::array();
  for (const auto& e : v.items) data.push_back(to_json(e));
  return {
      {"period",
       {{"start", format_rfc3339(v.period_start)}, {"end", format_rfc3339(v.period_end)}, {"source", v.period_source}}},
      {"subscription_id", v.subscription_id ? Json(*v.subscription_id) : Json(nullptr)},
      {"plan", v.plan ? Json(*v.plan) : Json(nullptr)},
      {"data", std::move(data)}};
}

struct Entitlements::Impl {
  tenancy::TenantData& data;
  Billing& billing;
  metering::Metering& metering;
  audit::AuditLog& audit;
  const Clock& clock;
  std::chrono::milliseconds ttl;
  CountResource count_resource;
  std::function<void()> events_committed;
  std::array<std::mutex, 64> creation_locks;  // serialize(): by hash of tenant and quota

  std::mutex mutex;
  std::unordered_map<std::string, Context> cache;  // tenant id -> its quotas and period
  // Bumped by forget(): a context loaded before it may predate the change and is not cached.
  std::uint64_t generation = 0;
  // "<tenant>|<quota>|<period start>|<threshold>" known to be announced: saves measuring once a period's are done.
  std::unordered_set<std::string> announced;

  std::int64_t now_ms() const { return unix_ms(clock.now()); }

  // Reads the tenant's quotas and period in `tx`.
  Result<Context> load(TenantTransaction& tx) {
    auto t = tx.control_plane()->execute(k_tenant_plan, {Value(tx.tenant_id())});
    if (!t) return std::unexpected(t.error());
    const std::string plan_code = t->empty() ? "" : t->text_at(0, 0).value_or("");
    auto in_force = billing.plan_in_force(tx, plan_code);
    if (!in_force) return std::unexpected(in_force.error());
    Context c;
    std::vector<Quota> quotas;
    if (in_force->plan) {
      const PlanPrice& p = in_force->plan->price;
      quotas = plan_quotas(p.quotas, p.features, p.limits);
      c.plan = in_force->plan->code;
    }
    auto overrides = load_overrides(tx);
    if (!overrides) return std::unexpected(overrides.error());
    c.quotas = apply_overrides(std::move(quotas), *overrides);
    const Instant now = clock.now();
    if (in_force->subscription) {
      c.from = in_force->subscription->current_period_start;
      c.period_end = in_force->subscription->current_period_end;
      c.source = "subscription";
      c.subscription_id = in_force->subscription->id;
      c.previous_from = in_force->previous_period_start;
    } else {
      c.from = metering::window_start(now, metering::Window::month);
      c.period_end = metering::next_window_start(c.from, metering::Window::month);
      c.source = "calendar_month";
      c.previous_from = metering::window_start(c.from - std::chrono::milliseconds(1), metering::Window::month);
    }
    // A period that ended without a renewal (the run has not come yet; a paused or unpaid subscription) stays the
    // period until one: usage after its end still counts, so hard limits keep holding.
    const bool overdue = c.period_end <= now;
    c.to = overdue ? k_open_end : c.period_end;
    // An overdue context is reused for a second at most: the renewal that ends it does not tell this cache.
    c.cache_until = overdue ? now + std::chrono::seconds(1) : c.period_end;
    c.loaded = clock.monotonic();
    return c;
  }

  std::optional<Context> cached(const std::string& tenant_id) {
    if (ttl.count() <= 0) return std::nullopt;
    std::lock_guard lock(mutex);
    auto it = cache.find(tenant_id);
    if (it == cache.end() || clock.monotonic() - it->second.loaded >= ttl || clock.now() >= it->second.cache_until) {
      return std::nullopt;
    }
    return it->second;
  }

  std::uint64_t current_generation() {
    std::lock_guard lock(mutex);
    return generation;
  }

  void remember(const std::string& tenant_id, const Context& c, std::uint64_t loaded_at_generation) {
    if (ttl.count() <= 0) return;
    std::lock_guard lock(mutex);
    if (generation != loaded_at_generation) return;
    if (cache.size() >= k_max_cached) cache.clear();
    cache[tenant_id] = c;
  }

  Result<Context> context(TenantTransaction& tx) {
    if (auto c = cached(tx.tenant_id())) return *c;
    const std::uint64_t gen = current_generation();
    auto c = load(tx);
    if (c) remember(tx.tenant_id(), *c, gen);
    return c;
  }

  Result<Context> context(const std::string& tenant_id) {
    if (auto c = cached(tenant_id)) return *c;
    const std::uint64_t gen = current_generation();
    Context out;
    auto r = data.transact_control_plane(tenant_id,
                                         [&](TenantTransaction& tx) -> Result<void> {
                                           auto c = load(tx);
                                           if (!c) return std::unexpected(c.error());
                                           out = std::move(*c);
                                           return {};
                                         },
                                         {.read_only = true});
    if (!r) return std::unexpected(r.error());
    remember(tenant_id, out, gen);
    return out;
  }

  void forget(const std::string& tenant_id) {
    std::lock_guard lock(mutex);
    cache.erase(tenant_id);
    ++generation;
  }

  static std::string notice_key(const std::string& tenant_id, const Quota& q, std::int64_t period, int threshold) {
    return tenant_id + "|" + q.name + "|" + std::to_string(period) + "|" + std::to_string(threshold);
  }

  bool all_announced(const std::string& tenant_id, const Quota& q, std::int64_t period) {
    std::lock_guard lock(mutex);
    return std::all_of(k_thresholds.begin(), k_thresholds.end(),
                       [&](int t) { return announced.contains(notice_key(tenant_id, q, period, t)); });
  }

  // The counts of the counted resources among `quotas` (quotas without a metric), by quota name.
  Result<std::map<std::string, std::int64_t>> counts(const std::string& tenant_id, const std::vector<Quota>& quotas) {
    std::map<std::string, std::int64_t> out;
    for (const Quota& q : quotas) {
      if (!q.metric.empty() || out.contains(q.name)) continue;
      auto n = count_resource(tenant_id, q.name);
      if (!n) return std::unexpected(n.error());
      out[q.name] = *n;
    }
    return out;
  }

  // Usage of the quotas in `c`, read in `tx`; counted resources take theirs from `counted`.
  Result<std::vector<std::int64_t>> usage(TenantTransaction& tx, const Context& c, const std::vector<Quota>& quotas,
                                          const std::map<std::string, std::int64_t>& counted) {
    std::vector<std::int64_t> out;
    for (const Quota& q : quotas) {
      if (q.metric.empty()) {
        const auto it = counted.find(q.name);
        out.push_back(it == counted.end() ? 0 : it->second);
        continue;
      }
      auto used = metering.measure(tx, q.metric, c.from, c.to);
      if (!used) return std::unexpected(used.error());
      out.push_back(*used);
    }
    return out;
  }

  // Announces the thresholds the selected quotas reach this period: a notice row and a quota.threshold_reached
  // event per new threshold, in one transaction. Errors are logged (the next change tries again).
  void thresholds(const std::string& tenant_id, const std::function<bool(const Quota&)>& which) {
    auto c = context(tenant_id);
    if (!c) {
      log::warn("quota thresholds not checked", {{"tenant_id", tenant_id}, {"error", c.error().message}});
      return;
    }
    std::vector<Quota> selected;
    for (const Quota& q : c->quotas) {
      if (q.limit && which(q) && !all_announced(tenant_id, q, unix_ms(c->from))) selected.push_back(q);
    }
    if (selected.empty()) return;
    auto counted = counts(tenant_id, selected);
    if (!counted) {
      log::warn("quota thresholds not checked", {{"tenant_id", tenant_id}, {"error", counted.error().message}});
      return;
    }
    // Measured in a read-only transaction first: most changes reach no new threshold and need no write.
    std::vector<std::int64_t> used;
    auto measured = data.transact_control_plane(tenant_id,
                                                [&](TenantTransaction& tx) -> Result<void> {
                                                  auto u = usage(tx, *c, selected, *counted);
                                                  if (!u) return std::unexpected(u.error());
                                                  used = std::move(*u);
                                                  return {};
                                                },
                                                {.read_only = true});
    if (!measured) {
      log::warn("quota thresholds not checked", {{"tenant_id", tenant_id}, {"error", measured.error().message}});
      return;
    }
    bool reached_new = false;
    {
      std::lock_guard lock(mutex);
      for (std::size_t i = 0; i < selected.size(); ++i) {
        for (int t : k_thresholds) {
          if (reaches(used[i], *selected[i].limit, t) &&
              !announced.contains(notice_key(tenant_id, selected[i], unix_ms(c->from), t))) {
            reached_new = true;
          }
        }
      }
    }
    if (!reached_new) return;
    bool emitted = false;
    auto r = data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      emitted = false;
      for (std::size_t i = 0; i < selected.size(); ++i) {
        const Quota& q = selected[i];
        for (int t : k_thresholds) {
          if (!reaches(used[i], *q.limit, t)) continue;
          auto ins = tx.execute(k_notice_insert, {Value(q.name), Value(unix_ms(c->from)), Value(std::int64_t{t}),
                                                  Value(used[i]), Value(*q.limit), Value(now_ms())});
          if (!ins) return std::unexpected(ins.error());
          if (ins->affected_rows == 0) continue;
          Json payload = {{"quota", q.name},
                          {"metric", q.metric.empty() ? Json(nullptr) : Json(q.metric)},
                          {"threshold", t},
                          {"used", used[i]},
                          {"limit", *q.limit},
                          {"enforcement", enforcement_name(q.enforcement)},
                          {"period_start", format_rfc3339(c->from)},
                          {"period_end", format_rfc3339(c->period_end)}};
          auto e = events::emit(*tx.control_plane(), clock, tenant_id, "quota.threshold_reached", std::move(payload));
          if (!e) return std::unexpected(e.error());
          emitted = true;
        }
      }
      return {};
    });
    if (!r) {
      log::warn("quota thresholds not recorded", {{"tenant_id", tenant_id}, {"error", r.error().message}});
      return;
    }
    {
      std::lock_guard lock(mutex);
      if (announced.size() >= k_max_cached) announced.clear();
      for (std::size_t i = 0; i < selected.size(); ++i) {
        for (int t : k_thresholds) {
          if (reaches(used[i], *selected[i].limit, t))
            announced.insert(notice_key(tenant_id, selected[i], unix_ms(c->from), t));
        }
      }
    }
    if (emitted && events_committed) events_committed();
  }

  Result<EntitlementView> view(const std::string& tenant_id, const std::string* only) {
    auto c = context(tenant_id);
    if (!c) return std::unexpected(c.error());
    std::vector<Quota> quotas;
    for (const Quota& q : c->quotas) {
      if (!only || q.name == *only) quotas.push_back(q);
    }
    if (only && quotas.empty()) return fail(Errc::not_found, "no quota " + *only + " applies to this tenant");
    auto counted = counts(tenant_id, quotas);
    if (!counted) return std::unexpected(counted.error());
    EntitlementView v{.period_start = c->from,
                      .period_end = c->period_end,
                      .period_source = c->source,
                      .subscription_id = c->subscription_id,
                      .plan = c->plan};
    auto r =
        data.transact_control_plane(tenant_id,
                                    [&](TenantTransaction& tx) -> Result<void> {
                                      v.items.clear();
                                      auto used = usage(tx, *c, quotas, *counted);
                                      if (!used) return std::unexpected(used.error());
                                      auto notices = tx.execute(k_notices, {Value(unix_ms(c->from))});
                                      if (!notices) return std::unexpected(notices.error());
                                      for (std::size_t i = 0; i < quotas.size(); ++i) {
                                        Entitlement e{.quota = quotas[i], .used = (*used)[i]};
                                        for (std::size_t n = 0; n < notices->rows.size(); ++n) {
                                          if (notices->text_at(n, 0).value_or("") == quotas[i].name) {
                                            e.notified.push_back(static_cast<int>(notices->int_at(n, 1).value_or(0)));
                                          }
                                        }
                                        v.items.push_back(std::move(e));
                                      }
                                      return {};
                                    },
                                    {.read_only = true});
    if (!r) return std::unexpected(r.error());
    return v;
  }
};

Entitlements::Entitlements(tenancy::TenantData& data, Billing& billing, metering::Metering& metering,
                           audit::AuditLog& audit, const Clock& clock, std::chrono::milliseconds cache_ttl,
                           CountResource count_resource, std::function<void()> events_committed)
    : impl_(new Impl{data,
                     billing,
                     metering,
                     audit,
                     clock,
                     cache_ttl,
                     std::move(count_resource),
                     std::move(events_committed),
                     {},
                     {},
                     {},
                     {}}) {}

Entitlements::~Entitlements() = default;

Result<EntitlementView> Entitlements::list(const std::string& tenant_id) { return impl_->view(tenant_id, nullptr); }

Result<Entitlement> Entitlements::get(const std::string& tenant_id, const std::string& name) {
  auto v = impl_->view(tenant_id, &name);
  if (!v) return std::unexpected(v.error());
  return v->items.front();
}

Result<Entitlement> Entitlements::put_override(const std::string& tenant_id, const std::string& name,
                                               const QuotaOverride& input, const audit::Context& who) {
  Impl& s = *impl_;
  auto r = s.data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto c = s.load(tx);
    if (!c) return std::unexpected(c.error());
    const Quota* before = find_quota(*c, name);
    // What the input leaves out keeps the quota's current metric and enforcement.
    const std::string metric = input.metric.value_or(before ? before->metric : "");
    const Enforcement enforcement = input.enforcement.value_or(before ? before->enforcement : Enforcement::soft);
    auto q = make_quota(name, metric, input.limit, enforcement, "quota " + name);
    if (!q) return std::unexpected(q.error());
    q->source = "override";
    if (auto saved = save_override(tx, *q, s.now_ms()); !saved) return saved;
    audit::Event event{.action = "entitlement.override_set", .resource_type = "entitlement", .resource_id = name};
    audit::add_change(event.changes, "quota", before ? quota_json(*before) : Json(nullptr), quota_json(*q));
    return s.audit.append(tx, who, std::move(event));
  });
  s.forget(tenant_id);
  if (!r) return std::unexpected(r.error());
  s.thresholds(tenant_id, [&](const Quota& q) { return q.name == name; });
  return get(tenant_id, name);
}

Result<void> Entitlements::delete_override(const std::string& tenant_id, const std::string& name,
                                           const audit::Context& who) {
  Impl& s = *impl_;
  auto r = s.data.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto c = s.load(tx);
    if (!c) return std::unexpected(c.error());
    const Quota* before = find_quota(*c, name);
    auto deleted = billing::delete_override(tx, name);
    if (!deleted) return std::unexpected(deleted.error());
    if (!*deleted) return fail(Errc::not_found, "this tenant has no override of quota " + name);
    audit::Event event{.action = "entitlement.override_deleted", .resource_type = "entitlement", .resource_id = name};
    audit::add_change(event.changes, "quota", before ? quota_json(*before) : Json(nullptr), nullptr);
    return s.audit.append(tx, who, std::move(event));
  });
  s.forget(tenant_id);
  return r;
}

Result<std::optional<Quota>> Entitlements::quota(const std::string& tenant_id, const std::string& name) {
  auto c = impl_->context(tenant_id);
  if (!c) return std::unexpected(c.error());
  const Quota* q = find_quota(*c, name);
  return q ? std::optional<Quota>(*q) : std::nullopt;
}

void Entitlements::forget(const std::string& tenant_id) { impl_->forget(tenant_id); }

Result<std::optional<Entitlements::Refusal>> Entitlements::admit(const std::string& tenant_id, std::string_view quota) {
  auto q = this->quota(tenant_id, std::string(quota));
  if (!q) return std::unexpected(q.error());
  if (!*q || !(*q)->metric.empty() || (*q)->enforcement != Enforcement::hard || !(*q)->limit) return std::nullopt;
  auto used = impl_->count_resource(tenant_id, quota);
  if (!used) return std::unexpected(used.error());
  if (*used < *(*q)->limit) return std::nullopt;
  return Refusal{.limit = *(*q)->limit, .used = *used};
}

std::unique_lock<std::mutex> Entitlements::serialize(const std::string& tenant_id, std::string_view quota) {
  const std::size_t slot =
      std::hash<std::string>{}(tenant_id + '/' + std::string(quota)) % impl_->creation_locks.size();
  return std::unique_lock<std::mutex>(impl_->creation_locks[slot]);
}

void Entitlements::resources_changed(const std::string& tenant_id, std::string_view quota) {
  impl_->thresholds(tenant_id, [&](const Quota& q) { return q.metric.empty() && q.name == quota; });
}

metering::QuotaHooks Entitlements::metering_hooks() {
  Impl* s = impl_.get();
  metering::QuotaHooks hooks;
  hooks.hard_limits = [s](TenantTransaction& tx) -> Result<metering::HardLimits> {
    auto c = s->context(tx);
    if (!c) return std::unexpected(c.error());
    // Two hard quotas on one metric: the tighter one binds.
    std::map<std::string, const Quota*> tightest;
    for (const Quota& q : c->quotas) {
      if (q.metric.empty() || q.enforcement != Enforcement::hard || !q.limit) continue;
      auto [it, added] = tightest.emplace(q.metric, &q);
      if (!added && *q.limit < *it->second->limit) it->second = &q;
    }
    metering::HardLimits out;
    for (const auto& [metric, q] : tightest) {
      out.emplace(metric, metering::HardLimit{.quota = q->name, .limit = *q->limit, .from = c->from, .to = c->to});
      // Late events stamped in the previous period count against its limit (taken as today's).
      if (c->previous_from) {
        out.emplace(metric, metering::HardLimit{
                                .quota = q->name, .limit = *q->limit, .from = *c->previous_from, .to = c->from});
      }
    }
    return out;
  };
  hooks.after_ingest = [s](const std::string& tenant_id, const std::vector<std::string>& metrics) {
    s->thresholds(tenant_id, [&](const Quota& q) {
      return !q.metric.empty() && std::find(metrics.begin(), metrics.end(), q.metric) != metrics.end();
    });
  };
  return hooks;
}

std::vector<TenantStatement> Entitlements::tenant_statements() {
  std::vector<TenantStatement> out = quota_statements();
  out.insert(out.end(), k_notice_statements.begin(), k_notice_statements.end());
  return out;
}

}  // namespace atrium::billing
