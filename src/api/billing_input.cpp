#include "api/billing_input.hpp"

#include <limits>

#include "core/json_input.hpp"

namespace atrium::api::billing_input {

namespace {

namespace ji = json_input;
using billing::Instant;

constexpr std::int64_t k_any_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t k_any_max = std::numeric_limits<std::int64_t>::max();

// Reads members into optionals, stopping at the first error: `read.text(name, max, target)` and so on.
class Reader {
 public:
  explicit Reader(const Json& body) : body_(body) {}

  Reader& text(const char* name, std::size_t max, std::optional<std::string>& target) {
    if (ok()) take(ji::text(body_, name, max), target);
    return *this;
  }
  Reader& integer(const char* name, std::optional<std::int64_t>& target) {
    if (ok()) take(ji::integer(body_, name, k_any_min, k_any_max), target);
    return *this;
  }
  Reader& boolean(const char* name, std::optional<bool>& target) {
    if (ok()) take(ji::boolean(body_, name), target);
    return *this;
  }
  Reader& time(const char* name, std::optional<Instant>& target) {
    if (!ok()) return *this;
    auto t = ji::time(body_, name);
    if (!t) {
      error_ = t.error();
    } else if (*t) {
      target = std::chrono::floor<std::chrono::seconds>(**t);  // billing counts whole seconds
    }
    return *this;
  }
  Reader& text_list(const char* name, std::optional<std::vector<std::string>>& target) {
    if (ok()) take(ji::text_list(body_, name, 10, 200), target);
    return *this;
  }
  // A required string: present and not empty.
  Reader& required(const char* name, std::size_t max, std::string& target, const char* what) {
    std::optional<std::string> v;
    text(name, max, v);
    if (ok() && (!v || v->empty())) error_ = Error{Errc::invalid_argument, what};
    if (ok()) target = std::move(*v);
    return *this;
  }
  bool ok() const { return !error_; }

  template <class T>
  Result<T> done(T value) const {
    if (error_) return std::unexpected(*error_);
    return value;
  }

 private:
  template <class T>
  void take(Result<std::optional<T>> r, std::optional<T>& target) {
    if (!r) {
      error_ = r.error();
    } else if (*r) {
      target = std::move(**r);
    }
  }

  const Json& body_;
  std::optional<Error> error_;
};

Result<void> price_fields(const Json& body, billing::PriceFields& p) {
  std::optional<std::string> interval;
  Reader read(body);
  read.text("currency", 3, p.currency)
      .text("interval", 20, interval)
      .integer("base_price", p.base_price)
      .integer("included_seats", p.included_seats)
      .integer("seat_price", p.seat_price)
      .integer("trial_days", p.trial_days);
  if (auto r = read.done(0); !r) return std::unexpected(r.error());
  if (interval) {
    p.interval = billing::parse_interval(*interval);
    if (!p.interval) return fail(Errc::invalid_argument, "interval must be monthly, quarterly or annual");
  }
  if (auto it = body.find("features"); it != body.end()) p.features = *it;
  if (auto it = body.find("limits"); it != body.end()) p.limits = *it;
  if (auto it = body.find("metered_prices"); it != body.end()) {
    auto m = billing::parse_metered_list(*it);
    if (!m) return std::unexpected(m.error());
    p.metered = std::move(*m);
  }
  if (auto it = body.find("quotas"); it != body.end()) {
    auto q = billing::parse_quotas(*it);
    if (!q) return std::unexpected(q.error());
    p.quotas = std::move(*q);
  }
  if (auto it = body.find("dunning"); it != body.end()) {
    auto d = billing::parse_dunning(*it);
    if (!d) return std::unexpected(d.error());
    p.dunning = std::move(*d);
  }
  return {};
}

Result<void> plan_members(const Json& body) {
  return ji::only_members(
      body, {"code", "name", "tier", "active", "currency", "interval", "base_price", "included_seats", "seat_price",
             "trial_days", "features", "limits", "metered_prices", "quotas", "dunning"});
}

}  // namespace

Result<billing::NewPlan> new_plan(const Json& body) {
  if (auto r = plan_members(body); !r) return std::unexpected(r.error());
  billing::NewPlan p;
  std::optional<std::string> code, name, tier;
  Reader read(body);
  read.text("code", 64, code).text("name", 200, name).text("tier", 20, tier).boolean("active", p.active);
  if (auto r = read.done(0); !r) return std::unexpected(r.error());
  p.code = code.value_or("");
  p.name = name.value_or("");
  p.tier = tier.value_or("");
  if (auto r = price_fields(body, p.price); !r) return std::unexpected(r.error());
  return p;
}

Result<billing::PlanUpdate> plan_update(const Json& body) {
  if (auto r = plan_members(body); !r) return std::unexpected(r.error());
  if (body.contains("code")) return fail(Errc::invalid_argument, "code cannot change");
  billing::PlanUpdate p;
  Reader read(body);
  read.text("name", 200, p.name).text("tier", 20, p.tier).boolean("active", p.active);
  if (auto r = read.done(0); !r) return std::unexpected(r.error());
  if (auto r = price_fields(body, p.price); !r) return std::unexpected(r.error());
  return p;
}

Result<billing::NewCoupon> new_coupon(const Json& body) {
  if (auto r = ji::only_members(body, {"code", "name", "percent_off_bps", "amount_off", "currency", "duration",
                                       "duration_months", "max_redemptions", "redeem_by"});
      !r) {
    return std::unexpected(r.error());
  }
  billing::NewCoupon c;
  std::optional<std::string> code;
  Reader read(body);
  read.text("code", 64, code)
      .text("name", 200, c.name)
      .integer("percent_off_bps", c.percent_off_bps)
      .integer("amount_off", c.amount_off)
      .text("currency", 3, c.currency)
      .text("duration", 20, c.duration)
      .integer("duration_months", c.duration_months)
      .integer("max_redemptions", c.max_redemptions)
      .time("redeem_by", c.redeem_by);
  if (auto r = read.done(0); !r) return std::unexpected(r.error());
  c.code = code.value_or("");
  return c;
}

Result<billing::TaxRateInput> tax_rate(const Json& body) {
  if (auto r = ji::only_members(body, {"country", "region", "name", "bps", "inclusive"}); !r) {
    return std::unexpected(r.error());
  }
  billing::TaxRateInput t;
  std::optional<std::string> country;
  Reader read(body);
  read.text("country", 2, country)
      .text("region", 10, t.region)
      .text("name", 100, t.name)
      .integer("bps", t.bps)
      .boolean("inclusive", t.inclusive);
  t.country = country.value_or("");
  return read.done(std::move(t));
}

Result<billing::AccountUpdate> account_update(const Json& body) {
  if (auto r = ji::only_members(body, {"legal_name", "email", "address", "country", "region", "currency", "tax_ids",
                                       "payment_method", "proration", "test_mode"});
      !r) {
    return std::unexpected(r.error());
  }
  billing::AccountUpdate a;
  Reader read(body);
  read.text("legal_name", 200, a.legal_name)
      .text("email", 254, a.email)
      .text("region", 10, a.region)
      .text("country", 2, a.country)
      .text("currency", 3, a.currency)
      .text_list("address", a.address)
      .text_list("tax_ids", a.tax_ids)
      .text("payment_method", 200, a.payment_method)
      .text("proration", 20, a.proration)
      .boolean("test_mode", a.test_mode);
  return read.done(std::move(a));
}

Result<billing::NewSubscription> new_subscription(const Json& body) {
  if (auto r = ji::only_members(body, {"plan", "seats", "trial_days", "billing_anchor_day", "coupon", "test_clock_id"});
      !r) {
    return std::unexpected(r.error());
  }
  billing::NewSubscription n;
  Reader read(body);
  read.required("plan", 64, n.plan, "plan (a plan's code or id) is required")
      .integer("seats", n.seats)
      .integer("trial_days", n.trial_days)
      .integer("billing_anchor_day", n.billing_anchor_day)
      .text("coupon", 64, n.coupon)
      .text("test_clock_id", 64, n.test_clock_id);
  return read.done(std::move(n));
}

Result<billing::ProrationBehavior> proration_behavior(std::string_view text) {
  if (text == "always_invoice") return billing::ProrationBehavior::always_invoice;
  if (text == "none") return billing::ProrationBehavior::none;
  if (text == "create_prorations") {
    return fail(Errc::invalid_argument,
                "proration_behavior create_prorations is not supported: prorations are invoiced at once "
                "(always_invoice) or not at all (none)");
  }
  return fail(Errc::invalid_argument, "proration_behavior must be always_invoice or none");
}

Result<billing::PlanChange> plan_change(const Json& body) {
  if (auto r = ji::only_members(body, {"plan", "seats", "proration_behavior", "proration_date"}); !r) {
    return std::unexpected(r.error());
  }
  billing::PlanChange c;
  std::optional<std::string> behavior;
  Reader read(body);
  read.text("plan", 64, c.plan)
      .integer("seats", c.seats)
      .text("proration_behavior", 32, behavior)
      .time("proration_date", c.proration_date);
  auto out = read.done(std::move(c));
  if (out && behavior) {
    auto b = proration_behavior(*behavior);
    if (!b) return std::unexpected(b.error());
    out->proration_behavior = *b;
  }
  return out;
}

Result<billing::Cancellation> cancellation(const Json& body) {
  if (auto r = ji::only_members(body, {"at_period_end"}); !r) return std::unexpected(r.error());
  std::optional<bool> at_end;
  Reader read(body);
  read.boolean("at_period_end", at_end);
  return read.done(billing::Cancellation{.at_period_end = at_end.value_or(false)});
}

Result<billing::ManualInvoice> manual_invoice(const Json& body) {
  if (auto r = ji::only_members(body, {"lines", "memo"}); !r) return std::unexpected(r.error());
  billing::ManualInvoice inv;
  std::optional<std::string> memo;
  if (auto r = Reader(body).text("memo", 2000, memo).done(0); !r) return std::unexpected(r.error());
  inv.memo = memo.value_or("");
  auto it = body.find("lines");
  if (it == body.end() || !it->is_array() || it->empty() || it->size() > 500) {
    return fail(Errc::invalid_argument, "lines must be an array of 1-500 lines");
  }
  for (const auto& l : *it) {
    if (auto r = ji::only_members(l, {"description", "quantity", "unit_amount"}); !r) return std::unexpected(r.error());
    billing::ManualLine line;
    std::optional<std::int64_t> quantity, unit;
    Reader read(l);
    read.required("description", 500, line.description, "lines[].description is required")
        .integer("quantity", quantity)
        .integer("unit_amount", unit);
    if (auto r = read.done(0); !r) return std::unexpected(r.error());
    if (!unit) return fail(Errc::invalid_argument, "lines[].unit_amount is required (minor units)");
    line.quantity = quantity.value_or(1);
    line.unit_amount = *unit;
    inv.lines.push_back(std::move(line));
  }
  return inv;
}

Result<billing::NewCreditNote> new_credit_note(const Json& body) {
  if (auto r = ji::only_members(body, {"invoice_id", "amount", "method", "reason", "memo"}); !r) {
    return std::unexpected(r.error());
  }
  billing::NewCreditNote n;
  std::optional<std::int64_t> amount;
  std::optional<std::string> memo;
  Reader read(body);
  read.required("invoice_id", 64, n.invoice_id, "invoice_id is required")
      .integer("amount", amount)
      .text("method", 20, n.method)
      .text("reason", 40, n.reason)
      .text("memo", 2000, memo);
  if (auto r = read.done(0); !r) return std::unexpected(r.error());
  if (!amount) return fail(Errc::invalid_argument, "amount (minor units, > 0) is required");
  n.amount = *amount;
  n.memo = memo.value_or("");
  return n;
}

Result<billing::NewTestClock> new_test_clock(const Json& body) {
  if (auto r = ji::only_members(body, {"name", "frozen_time"}); !r) return std::unexpected(r.error());
  billing::NewTestClock c;
  std::optional<std::string> name;
  Reader read(body);
  read.text("name", 200, name).time("frozen_time", c.frozen_time);
  c.name = name.value_or("");
  return read.done(std::move(c));
}

Result<billing::QuotaOverride> quota_override(const std::string& name, const Json& body) {
  return billing::parse_quota_members(body, "quota " + name);
}

}  // namespace atrium::api::billing_input
