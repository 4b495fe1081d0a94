#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"

namespace atrium::billing::detail {

std::optional<std::int64_t> opt_int(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  return r.int_at(row, col);
}
Instant time_at(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  return from_unix_seconds(r.int_at(row, col).value_or(0));
}
std::optional<Instant> opt_time(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  if (auto v = r.int_at(row, col)) return from_unix_seconds(*v);
  return std::nullopt;
}
std::optional<std::string> opt_text(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  return r.text_at(row, col);
}
bool bool_at(const storage::ResultSet& r, std::size_t row, std::size_t col) {
  if (auto b = r.bool_at(row, col)) return *b;
  return r.int_at(row, col).value_or(0) != 0;
}
Json parse_stored(const std::string& text, Json fallback) {
  std::string error;
  auto parsed = parse_json(text, {}, &error);
  return parsed ? std::move(*parsed) : std::move(fallback);
}
std::vector<std::string> string_list(const Json& j) {
  std::vector<std::string> out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}
Json time_json(std::optional<Instant> t) {
  if (!t) return nullptr;
  return format_rfc3339(*t);
}
Instant seconds(std::chrono::system_clock::time_point t) { return std::chrono::floor<std::chrono::seconds>(t); }

Json metered_json(const std::vector<MeteredPrice>& prices) {
  Json out = Json::array();
  for (const auto& p : prices) {
    Json j{{"metric", p.metric}, {"model", std::string(price_model_name(p.model))}};
    if (p.model == PriceModel::per_unit || p.model == PriceModel::package) j["unit_amount"] = p.unit_amount;
    if (p.model == PriceModel::package) j["package_size"] = p.package_size;
    if (p.model == PriceModel::graduated || p.model == PriceModel::volume) {
      Json tiers = Json::array();
      for (const auto& t : p.tiers) {
        tiers.push_back({{"up_to", t.up_to ? Json(*t.up_to) : Json("inf")},
                         {"unit_amount", t.unit_amount},
                         {"flat_amount", t.flat_amount}});
      }
      j["tiers"] = tiers;
    }
    out.push_back(std::move(j));
  }
  return out;
}

Json dunning_json(const DunningPolicy& d) {
  return {{"retry_schedule_hours", d.retry_hours},
          {"final_action", d.final_action == FinalAction::cancel ? "cancel" : "unpaid"}};
}

bool valid_country(std::string_view code) {
  return code.size() == 2 && std::isupper(static_cast<unsigned char>(code[0])) &&
         std::isupper(static_cast<unsigned char>(code[1]));
}

Result<void> check_limit_values(const Json& obj, const char* what, std::initializer_list<std::string_view> known) {
  if (!obj.is_object()) return fail(Errc::invalid_argument, std::string(what) + " must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return fail(Errc::invalid_argument, std::string(what) + "." + it.key() + " is not a known " + what);
    }
    const Json& v = it.value();
    // The seed's plan: support is 'email' | 'priority' | '24/7'; sla a number, the uptime percentage.
    if (it.key() == "support") {
      if (!v.is_string() || (v != "email" && v != "priority" && v != "24/7")) {
        return fail(Errc::invalid_argument, std::string(what) + ".support must be \"email\", \"priority\" or \"24/7\"");
      }
      continue;
    }
    if (it.key() == "sla") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 100) {
        return fail(Errc::invalid_argument, std::string(what) + ".sla must be a number from 0 to 100 (uptime %)");
      }
      continue;
    }
    const bool unlimited = v.is_string() && v.get<std::string>() == "unlimited";
    const bool count = v.is_number_integer() && v.get<std::int64_t>() >= 0;
    if (!unlimited && !count) {
      return fail(Errc::invalid_argument,
                  std::string(what) + "." + it.key() + " must be a non-negative integer or \"unlimited\"");
    }
  }
  return {};
}

Result<MeteredPrice> parse_metered(const Json& j) {
  if (!j.is_object()) return fail(Errc::invalid_argument, "metered_prices entries must be objects");
  if (auto r = only_members(j, {"metric", "model", "unit_amount", "package_size", "tiers"}); !r) {
    return std::unexpected(r.error());
  }
  MeteredPrice p;
  auto metric = text_member(j, "metric", 100);
  if (!metric) return std::unexpected(metric.error());
  if (!*metric || (*metric)->empty()) return fail(Errc::invalid_argument, "metered_prices[].metric is required");
  p.metric = **metric;
  auto model = text_member(j, "model", 20);
  if (!model) return std::unexpected(model.error());
  auto parsed = parse_price_model(model->value_or(""));
  if (!parsed)
    return fail(Errc::invalid_argument, "metered_prices[].model must be per_unit, graduated, volume or package");
  p.model = *parsed;
  auto unit = int_member(j, "unit_amount", 0, k_max_amount);
  if (!unit) return std::unexpected(unit.error());
  p.unit_amount = unit->value_or(0);
  auto size = int_member(j, "package_size", 1, k_max_amount);
  if (!size) return std::unexpected(size.error());
  p.package_size = size->value_or(1);
  if (auto it = j.find("tiers"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->size() > 100) return fail(Errc::invalid_argument, "tiers must be an array of up to 100");
    for (const auto& t : *it) {
      if (!t.is_object()) return fail(Errc::invalid_argument, "tiers entries must be objects");
      if (auto r = only_members(t, {"up_to", "unit_amount", "flat_amount"}); !r) return std::unexpected(r.error());
      Tier tier;
      if (auto u = t.find("up_to"); u != t.end() && !(u->is_string() && u->get<std::string>() == "inf")) {
        auto up = int_member(t, "up_to", 1, k_max_amount);
        if (!up) return std::unexpected(up.error());
        tier.up_to = *up;
      }
      auto ua = int_member(t, "unit_amount", 0, k_max_amount);
      if (!ua) return std::unexpected(ua.error());
      auto fa = int_member(t, "flat_amount", 0, k_max_amount);
      if (!fa) return std::unexpected(fa.error());
      tier.unit_amount = ua->value_or(0);
      tier.flat_amount = fa->value_or(0);
      p.tiers.push_back(tier);
    }
  }
  if (auto v = validate(p); !v) return std::unexpected(v.error());
  return p;
}

Result<void> check_metered_list(const std::vector<MeteredPrice>& prices) {
  for (std::size_t i = 0; i < prices.size(); ++i) {
    if (auto v = validate(prices[i]); !v) return std::unexpected(v.error());
    for (std::size_t j = 0; j < i; ++j) {
      if (prices[j].metric == prices[i].metric) {
        return fail(Errc::invalid_argument, "metered_prices has two prices for metric " + prices[i].metric);
      }
    }
  }
  return {};
}

Result<Plan> read_plan(const storage::ResultSet& r, std::size_t i) {
  Plan p;
  p.id = r.text_at(i, 0).value_or("");
  p.code = r.text_at(i, 1).value_or("");
  p.name = r.text_at(i, 2).value_or("");
  p.tier = r.text_at(i, 3).value_or("");
  p.active = bool_at(r, i, 4);
  p.created_at = time_at(r, i, 5);
  p.updated_at = time_at(r, i, 6);
  p.price.version = static_cast<int>(r.int_at(i, 7).value_or(1));
  p.price.currency = r.text_at(i, 8).value_or("");
  p.price.interval = parse_interval(r.text_at(i, 9).value_or("")).value_or(Interval::monthly);
  p.price.base_price = r.int_at(i, 10).value_or(0);
  p.price.included_seats = r.int_at(i, 11).value_or(0);
  p.price.seat_price = r.int_at(i, 12).value_or(0);
  p.price.trial_days = static_cast<int>(r.int_at(i, 13).value_or(0));
  p.price.features = parse_stored(r.text_at(i, 14).value_or("{}"), Json::object());
  p.price.limits = parse_stored(r.text_at(i, 15).value_or("{}"), Json::object());
  auto metered = parse_metered_list(parse_stored(r.text_at(i, 16).value_or("[]"), Json::array()));
  if (!metered) return fail(Errc::internal, "stored metered prices: " + metered.error().message);
  p.price.metered = std::move(*metered);
  auto dunning = parse_dunning(parse_stored(r.text_at(i, 17).value_or("null"), nullptr));
  if (!dunning) return fail(Errc::internal, "stored dunning policy: " + dunning.error().message);
  p.price.dunning = std::move(*dunning);
  p.price.created_at = time_at(r, i, 18);
  auto quotas = parse_quotas(parse_stored(r.text_at(i, 19).value_or("{}"), Json::object()));
  if (!quotas) return fail(Errc::internal, "stored quotas: " + quotas.error().message);
  p.price.quotas = std::move(*quotas);
  return p;
}

Coupon read_coupon(const storage::ResultSet& r, std::size_t i) {
  Coupon c;
  c.id = r.text_at(i, 0).value_or("");
  c.code = r.text_at(i, 1).value_or("");
  c.name = r.text_at(i, 2).value_or("");
  c.percent_off_bps = r.int_at(i, 3).value_or(0);
  c.amount_off = r.int_at(i, 4).value_or(0);
  c.currency = r.text_at(i, 5).value_or("");
  c.duration = r.text_at(i, 6).value_or("once");
  c.duration_months = static_cast<int>(r.int_at(i, 7).value_or(0));
  c.max_redemptions = opt_int(r, i, 8);
  c.times_redeemed = r.int_at(i, 9).value_or(0);
  c.redeem_by = opt_time(r, i, 10);
  c.active = bool_at(r, i, 11);
  c.created_at = time_at(r, i, 12);
  return c;
}

TaxRateRow read_tax(const storage::ResultSet& r, std::size_t i) {
  TaxRateRow t;
  t.id = r.text_at(i, 0).value_or("");
  t.country = r.text_at(i, 1).value_or("");
  t.region = r.text_at(i, 2).value_or("");
  t.name = r.text_at(i, 3).value_or("");
  t.bps = r.int_at(i, 4).value_or(0);
  t.inclusive = bool_at(r, i, 5);
  t.created_at = time_at(r, i, 6);
  return t;
}

Result<Account> read_account(const TenantTransaction& tx, const storage::ResultSet& r, std::size_t i) {
  Account a;
  a.tenant_id = r.text_at(i, 0).value_or("");
  std::array<std::string, k_account_sealed.size()> opened;
  for (std::size_t f = 0; f < k_account_sealed.size(); ++f) {
    auto plain = tx.open(k_account_sealed[f], a.tenant_id, r.text_at(i, k_account_sealed_columns[f]).value_or(""));
    if (!plain) return std::unexpected(plain.error());
    opened[f] = std::move(*plain);
  }
  a.legal_name = std::move(opened[0]);
  a.email = std::move(opened[1]);
  a.address = string_list(parse_stored(opened[2].empty() ? "[]" : opened[2], Json::array()));
  a.country = r.text_at(i, 4).value_or("");
  a.region = r.text_at(i, 5).value_or("");
  a.currency = r.text_at(i, 6).value_or("");
  a.tax_ids = string_list(parse_stored(opened[3].empty() ? "[]" : opened[3], Json::array()));
  a.payment_method = std::move(opened[4]);
  a.credit_balance = r.int_at(i, 9).value_or(0);
  a.proration = parse_proration_mode(r.text_at(i, 10).value_or("daily")).value_or(ProrationMode::daily);
  a.test_mode = bool_at(r, i, 11);
  a.created_at = time_at(r, i, 12);
  a.updated_at = time_at(r, i, 13);
  return a;
}

Subscription read_sub(const storage::ResultSet& r, std::size_t i) {
  Subscription s;
  s.tenant_id = r.text_at(i, 0).value_or("");
  s.id = r.text_at(i, 1).value_or("");
  s.plan_id = r.text_at(i, 2).value_or("");
  s.plan_version = static_cast<int>(r.int_at(i, 3).value_or(1));
  s.status = parse_status(r.text_at(i, 4).value_or("")).value_or(Status::active);
  s.seats = r.int_at(i, 5).value_or(1);
  s.anchor = time_at(r, i, 6);
  s.cycle = r.int_at(i, 7).value_or(0);
  s.current_period_start = time_at(r, i, 8);
  s.current_period_end = time_at(r, i, 9);
  s.trial_end = opt_time(r, i, 10);
  s.cancel_at_period_end = bool_at(r, i, 11);
  s.cancelled_at = opt_time(r, i, 12);
  s.paused_at = opt_time(r, i, 13);
  s.coupon_id = opt_text(r, i, 14);
  s.coupon_start = opt_time(r, i, 15);
  s.coupon_uses = r.int_at(i, 16).value_or(0);
  s.test_clock_id = opt_text(r, i, 17);
  s.created_at = time_at(r, i, 18);
  s.updated_at = time_at(r, i, 19);
  if (!r.is_null(i, 20)) s.period_discounted = bool_at(r, i, 20);
  return s;
}

Invoice read_invoice(const storage::ResultSet& r, std::size_t i) {
  Invoice v;
  v.tenant_id = r.text_at(i, 0).value_or("");
  v.id = r.text_at(i, 1).value_or("");
  v.number = opt_text(r, i, 2);
  v.subscription_id = opt_text(r, i, 3);
  v.status = r.text_at(i, 5).value_or("");
  v.billing_reason = r.text_at(i, 6).value_or("");
  v.currency = r.text_at(i, 7).value_or("");
  v.period_start = time_at(r, i, 8);
  v.period_end = time_at(r, i, 9);
  v.totals.subtotal = r.int_at(i, 10).value_or(0);
  v.totals.discount = r.int_at(i, 11).value_or(0);
  v.discount_label = r.text_at(i, 12).value_or("");
  v.totals.tax = r.int_at(i, 13).value_or(0);
  v.totals.tax_inclusive = bool_at(r, i, 14);
  v.tax_label = r.text_at(i, 15).value_or("");
  v.totals.total = r.int_at(i, 16).value_or(0);
  v.totals.credit_applied = r.int_at(i, 17).value_or(0);
  v.totals.credit_created = r.int_at(i, 18).value_or(0);
  v.totals.amount_due = r.int_at(i, 19).value_or(0);
  v.amount_paid = r.int_at(i, 20).value_or(0);
  v.amount_remaining = r.int_at(i, 21).value_or(0);
  v.attempt_count = static_cast<int>(r.int_at(i, 22).value_or(0));
  v.next_payment_attempt = opt_time(r, i, 23);
  // Sealed (the customer's personal data, encrypted at rest): kept as its stored text until open_customer.
  const std::string customer = r.text_at(i, 24).value_or("{}");
  v.customer = tenancy::is_sealed(customer) ? Json(customer) : parse_stored(customer, Json::object());
  v.memo = r.text_at(i, 25).value_or("");
  v.test_clock_id = opt_text(r, i, 26);
  v.created_at = time_at(r, i, 27);
  v.finalized_at = opt_time(r, i, 28);
  v.paid_at = opt_time(r, i, 29);
  v.voided_at = opt_time(r, i, 30);
  v.due_at = opt_time(r, i, 32);
  v.dunning_grace_hours = r.int_at(i, 33).value_or(0);
  return v;
}

Line read_line(const storage::ResultSet& r, std::size_t i) {
  Line l;
  l.kind = parse_line_kind(r.text_at(i, 2).value_or("")).value_or(LineKind::one_off);
  l.description = r.text_at(i, 3).value_or("");
  l.quantity = r.int_at(i, 4).value_or(0);
  l.unit_amount = r.int_at(i, 5).value_or(0);
  l.amount = r.int_at(i, 6).value_or(0);
  l.period_start = time_at(r, i, 7);
  l.period_end = time_at(r, i, 8);
  l.proration = bool_at(r, i, 9);
  return l;
}

PaymentAttempt read_attempt(const storage::ResultSet& r, std::size_t i) {
  PaymentAttempt a;
  a.id = r.text_at(i, 0).value_or("");
  a.invoice_id = r.text_at(i, 1).value_or("");
  a.attempt = static_cast<int>(r.int_at(i, 2).value_or(0));
  a.idempotency_key = r.text_at(i, 3).value_or("");
  a.amount = r.int_at(i, 4).value_or(0);
  a.currency = r.text_at(i, 5).value_or("");
  a.payment_method = r.text_at(i, 6).value_or("");
  a.status = r.text_at(i, 7).value_or("");
  a.failure_code = r.text_at(i, 8).value_or("");
  a.decline = r.text_at(i, 9).value_or("");
  a.message = r.text_at(i, 10).value_or("");
  a.reference = r.text_at(i, 11).value_or("");
  a.created_at = time_at(r, i, 12);
  a.completed_at = opt_time(r, i, 13);
  return a;
}

CreditNote read_credit(const storage::ResultSet& r, std::size_t i) {
  CreditNote c;
  c.tenant_id = r.text_at(i, 0).value_or("");
  c.id = r.text_at(i, 1).value_or("");
  c.number = r.text_at(i, 2).value_or("");
  c.invoice_id = r.text_at(i, 3).value_or("");
  c.amount = r.int_at(i, 4).value_or(0);
  c.method = r.text_at(i, 5).value_or("");
  c.reason = r.text_at(i, 6).value_or("");
  c.memo = r.text_at(i, 7).value_or("");
  c.reference = r.text_at(i, 8).value_or("");
  c.created_at = time_at(r, i, 9);
  return c;
}

TestClock read_clock(const storage::ResultSet& r, std::size_t i) {
  return TestClock{r.text_at(i, 0).value_or(""), r.text_at(i, 1).value_or(""), time_at(r, i, 2), time_at(r, i, 3)};
}

Result<std::int64_t> period_amount(const PlanPrice& price, std::int64_t seats) {
  const std::int64_t extra = std::max<std::int64_t>(0, seats - price.included_seats);
  auto seats_amount = multiply(extra, price.seat_price);
  if (!seats_amount) return seats_amount;
  return add(price.base_price, *seats_amount);
}

std::pair<Instant, std::int64_t> anchor_keeping_day(Instant first_end, int day, Interval interval) {
  using namespace std::chrono;
  const auto date = floor<days>(first_end);
  const auto time_of_day = first_end - date;
  const year_month_day ymd{date};
  const std::chrono::year_month end_month{ymd.year(), ymd.month()};
  for (std::int64_t k = 0; k <= 8; ++k) {
    const std::chrono::year_month ym = end_month - months{k * interval_months(interval)};
    if (static_cast<unsigned>((ym / last).day()) >= static_cast<unsigned>(day)) {
      const Instant anchor = sys_days{ym / std::chrono::day{static_cast<unsigned>(day)}} + time_of_day;
      return {anchor, k};
    }
  }
  return {first_end, 0};  // unreachable: every 8 years hold a month of 31 days and a leap February
}

std::string invoice_number(int year_month_value, std::int64_t n, std::string_view prefix) {
  std::string digits = std::to_string(n);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return std::string(prefix) + "-" + std::to_string(year_month_value) + "-" + digits;
}

Json changed_fields(const Json& before, const Json& after) {
  Json changes = Json::object();
  for (auto it = after.begin(); it != after.end(); ++it) {
    if (it.key() != "updated_at") audit::add_change(changes, it.key(), before.value(it.key(), Json()), it.value());
  }
  return changes;
}

}  // namespace atrium::billing::detail

namespace atrium::billing {

Result<std::vector<MeteredPrice>> parse_metered_list(const Json& j) {
  std::vector<MeteredPrice> out;
  if (j.is_null()) return out;
  if (!j.is_array() || j.size() > 50)
    return fail(Errc::invalid_argument, "metered_prices must be an array of up to 50");
  for (const auto& e : j) {
    auto p = parse_metered(e);
    if (!p) return std::unexpected(p.error());
    out.push_back(std::move(*p));
  }
  if (auto c = check_metered_list(out); !c) return std::unexpected(c.error());
  return out;
}

}  // namespace atrium::billing

namespace atrium::billing::detail {

Result<std::string> seal_customer(const TenantTransaction& tx, const Invoice& inv) {
  return tx.seal(k_invoice_customer, inv.id, inv.customer.dump());
}

Result<void> open_customer(const TenantTransaction& tx, Invoice& inv) {
  if (!inv.customer.is_string()) return {};
  auto plain = tx.open(k_invoice_customer, inv.id, inv.customer.get<std::string>());
  if (!plain) return std::unexpected(plain.error());
  inv.customer = parse_stored(*plain, Json::object());
  return {};
}

}  // namespace atrium::billing::detail
