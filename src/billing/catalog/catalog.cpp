#include "billing/catalog/sql.hpp"
#include "billing/detail/state.hpp"
#include "storage/value_json.hpp"

namespace atrium::billing {

Result<Plan> Billing::Impl::plan_version(Transaction& tx, const std::string& plan_id, int version) {
  const std::string key = plan_id + ":" + std::to_string(version);
  {
    std::lock_guard lock(plan_mutex);
    if (auto it = plan_versions.find(key); it != plan_versions.end()) return it->second;
  }
  auto r = tx.execute(k_plan_get, {Value(plan_id), Value(std::int64_t{version})});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no plan " + plan_id + " version " + std::to_string(version));
  auto plan = read_plan(*r, 0);
  if (!plan) return plan;
  std::lock_guard lock(plan_mutex);
  plan_versions.emplace(key, *plan);
  return plan;
}

Result<Plan> Billing::Impl::plan_current(Transaction& tx, const std::string& id_or_code) {
  auto r = tx.execute(k_plan_get, {Value(id_or_code), Value()});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no plan '" + id_or_code + "'");
  return read_plan(*r, 0);
}

Result<std::optional<Coupon>> Billing::Impl::coupon(Transaction& tx, const std::string& id) {
  auto r = tx.execute(k_coupon_get, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return std::optional<Coupon>();
  return std::optional<Coupon>(read_coupon(*r, 0));
}

Result<std::optional<TaxRateRow>> Billing::Impl::tax_for(Transaction& tx, const Account& account) {
  if (account.country.empty()) return std::optional<TaxRateRow>();
  if (!account.region.empty()) {
    auto r = tx.execute(k_tax_get, {Value(account.country), Value(account.region)});
    if (!r) return std::unexpected(r.error());
    if (!r->empty()) return std::optional<TaxRateRow>(read_tax(*r, 0));
  }
  auto r = tx.execute(k_tax_get, {Value(account.country), Value(std::string())});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return std::optional<TaxRateRow>();
  return std::optional<TaxRateRow>(read_tax(*r, 0));
}

// ---- catalog ----------------------------------------------------------------------------------------------------

namespace {

constexpr std::array<std::string_view, 5> k_tiers{"free", "starter", "professional", "business", "enterprise"};

// The price fields of a plan: all the required ones for a new plan; the given ones over `base` for an update.
Result<PlanPrice> apply_price(const PriceFields& in, const PlanPrice& base, bool creating) {
  PlanPrice p = base;
  if (in.currency) {
    if (!valid_currency(*in.currency))
      return fail(Errc::invalid_argument, "currency must be an ISO 4217 code such as USD");
    p.currency = *in.currency;
  } else if (creating) {
    return fail(Errc::invalid_argument, "currency is required");
  }
  if (in.interval) p.interval = *in.interval;
  if (in.base_price) {
    if (*in.base_price < 0 || *in.base_price > k_max_amount) {
      return fail(Errc::invalid_argument, "base_price must be between 0 and " + std::to_string(k_max_amount));
    }
    p.base_price = *in.base_price;
  } else if (creating) {
    return fail(Errc::invalid_argument, "base_price is required (minor units, e.g. 4900 for 49.00)");
  }
  if (in.included_seats) {
    if (*in.included_seats < 0 || *in.included_seats > 1'000'000) {
      return fail(Errc::invalid_argument, "included_seats must be between 0 and 1000000");
    }
    p.included_seats = *in.included_seats;
  }
  if (in.seat_price) {
    if (*in.seat_price < 0 || *in.seat_price > k_max_amount) {
      return fail(Errc::invalid_argument, "seat_price must be between 0 and " + std::to_string(k_max_amount));
    }
    p.seat_price = *in.seat_price;
  }
  if (in.trial_days) {
    if (*in.trial_days < 0 || *in.trial_days > 730)
      return fail(Errc::invalid_argument, "trial_days must be between 0 and 730");
    p.trial_days = static_cast<int>(*in.trial_days);
  }
  if (in.features) {
    if (auto r = check_limit_values(*in.features, "features", {"apiCalls", "storage", "support", "sla"}); !r)
      return std::unexpected(r.error());
    p.features = *in.features;
  }
  if (in.limits) {
    if (auto r = check_limit_values(*in.limits, "limits",
                                    {"projects", "integrations", "customDomains", "requestsPerSecond", "burst"});
        !r)
      return std::unexpected(r.error());
    p.limits = *in.limits;
  }
  if (in.metered) {
    if (auto r = check_metered_list(*in.metered); !r) return std::unexpected(r.error());
    p.metered = *in.metered;
  }
  if (in.quotas) p.quotas = *in.quotas;
  if (in.dunning) p.dunning = *in.dunning;
  return p;
}

Result<void> check_tier(const std::string& tier) {
  if (std::find(k_tiers.begin(), k_tiers.end(), tier) == k_tiers.end()) {
    return fail(Errc::invalid_argument, "tier must be free, starter, professional, business or enterprise");
  }
  return {};
}

bool same_price(const PlanPrice& a, const PlanPrice& b) {
  return a.currency == b.currency && a.interval == b.interval && a.base_price == b.base_price &&
         a.included_seats == b.included_seats && a.seat_price == b.seat_price && a.trial_days == b.trial_days &&
         a.features == b.features && a.limits == b.limits && metered_json(a.metered) == metered_json(b.metered) &&
         quotas_json(a.quotas) == quotas_json(b.quotas) && dunning_json(a.dunning) == dunning_json(b.dunning);
}

Result<void> insert_version(Transaction& tx, const std::string& plan_id, const PlanPrice& p) {
  auto r = tx.execute(
      k_plan_version_insert,
      {Value(plan_id), Value(std::int64_t{p.version}), Value(p.currency), Value(std::string(interval_name(p.interval))),
       Value(p.base_price), Value(p.included_seats), Value(p.seat_price), Value(std::int64_t{p.trial_days}),
       Value(p.features.dump()), Value(p.limits.dump()), Value(metered_json(p.metered).dump()),
       Value(dunning_json(p.dunning).dump()), time_value(p.created_at), Value(quotas_json(p.quotas).dump())});
  if (!r) return std::unexpected(r.error());
  return {};
}

bool valid_code(std::string_view code) {
  if (code.empty() || code.size() > 64) return false;
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

}  // namespace

Result<Plan> Billing::create_plan(const NewPlan& input, const audit::Context& who) {
  if (!valid_code(input.code)) {
    return fail(Errc::invalid_argument, "code is required: 1-64 letters, digits, '-' or '_'");
  }
  if (input.name.empty() || input.name.size() > 200)
    return fail(Errc::invalid_argument, "name is required (up to 200 bytes)");
  if (auto t = check_tier(input.tier); !t) return std::unexpected(t.error());
  auto price = apply_price(input.price, PlanPrice{}, true);
  if (!price) return std::unexpected(price.error());
  Plan plan;
  plan.id = new_uuid_v7(impl_->clock);
  plan.code = input.code;
  plan.name = input.name;
  plan.tier = input.tier;
  plan.active = input.active.value_or(true);
  plan.created_at = plan.updated_at = impl_->now();
  plan.price = *price;
  plan.price.version = 1;
  plan.price.created_at = plan.created_at;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_plan_insert, {Value(plan.id), Value(plan.code), Value(plan.name), Value(plan.tier),
                                          Value(plan.active), Value(std::int64_t{1}), time_value(plan.created_at)});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) return fail(Errc::conflict, "a plan with this code exists");
      return std::unexpected(ins.error());
    }
    if (auto v = insert_version(tx, plan.id, plan.price); !v) return v;
    audit::Event e{.action = "plan.created", .resource_type = "plan", .resource_id = plan.id};
    e.changes = audit::created_changes(to_json(plan));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return plan;
}

Result<Plan> Billing::update_plan(const std::string& id, const PlanUpdate& input, const audit::Context& who) {
  std::optional<Plan> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    // Locked on PostgreSQL: two concurrent price changes make versions n+1 and n+2, not a duplicate n+1.
    auto locked = tx.backend() == storage::Backend::postgres ? tx.execute(k_plan_get_locked, {Value(id)})
                                                             : tx.execute(k_plan_get, {Value(id), Value()});
    if (!locked) return std::unexpected(locked.error());
    if (locked->empty()) return fail(Errc::not_found, "no plan '" + id + "'");
    auto before = read_plan(*locked, 0);
    if (!before) return std::unexpected(before.error());
    Plan plan = *before;
    if (input.name) {
      if (input.name->empty() || input.name->size() > 200) {
        return fail(Errc::invalid_argument, "name must not be empty (up to 200 bytes)");
      }
      plan.name = *input.name;
    }
    if (input.tier) {
      if (auto t = check_tier(*input.tier); !t) return t;
      plan.tier = *input.tier;
    }
    if (input.active) plan.active = *input.active;
    auto price = apply_price(input.price, before->price, false);
    if (!price) return std::unexpected(price.error());
    plan.updated_at = impl_->now();
    if (!same_price(*price, before->price)) {
      plan.price = *price;
      plan.price.version = before->price.version + 1;
      plan.price.created_at = plan.updated_at;
      if (auto v = insert_version(tx, plan.id, plan.price); !v) return v;
    }
    auto up = tx.execute(k_plan_update, {Value(plan.id), Value(plan.name), Value(plan.tier), Value(plan.active),
                                         Value(std::int64_t{plan.price.version}), time_value(plan.updated_at)});
    if (!up) return std::unexpected(up.error());
    audit::Event e{.action = "plan.updated", .resource_type = "plan", .resource_id = plan.id};
    e.changes = changed_fields(to_json(*before), to_json(plan));
    if (auto ap = impl_->audit.append(tx, who, e); !ap) return ap;
    out = std::move(plan);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<std::vector<Plan>> Billing::list_plans(bool include_inactive) {
  std::vector<Plan> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_plan_list, {Value(include_inactive)});
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
          auto p = read_plan(*rows, i);
          if (!p) return std::unexpected(p.error());
          out.push_back(std::move(*p));
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Plan> Billing::get_plan(const std::string& id_or_code, std::optional<int> version) {
  std::optional<Plan> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_plan_get, {Value(id_or_code), version ? Value(std::int64_t{*version}) : Value()});
        if (!rows) return std::unexpected(rows.error());
        if (rows->empty()) return fail(Errc::not_found, "no plan '" + id_or_code + "'");
        auto p = read_plan(*rows, 0);
        if (!p) return std::unexpected(p.error());
        out = std::move(*p);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<Coupon> Billing::create_coupon(const NewCoupon& input, const audit::Context& who) {
  Coupon c;
  if (!valid_code(input.code))
    return fail(Errc::invalid_argument, "code is required: 1-64 letters, digits, '-' or '_'");
  c.code = input.code;
  c.name = input.name.value_or(c.code);
  if (input.percent_off_bps.has_value() == input.amount_off.has_value()) {
    return fail(Errc::invalid_argument, "give exactly one of percent_off_bps (1-10000) and amount_off");
  }
  c.percent_off_bps = input.percent_off_bps.value_or(0);
  c.amount_off = input.amount_off.value_or(0);
  if (input.percent_off_bps && (c.percent_off_bps < 1 || c.percent_off_bps > 10000)) {
    return fail(Errc::invalid_argument, "percent_off_bps must be between 1 and 10000");
  }
  if (input.amount_off && (c.amount_off < 1 || c.amount_off > k_max_amount)) {
    return fail(Errc::invalid_argument, "amount_off must be between 1 and " + std::to_string(k_max_amount));
  }
  if (c.amount_off > 0) {
    if (!input.currency || !valid_currency(*input.currency)) {
      return fail(Errc::invalid_argument, "currency (ISO 4217) is required with amount_off");
    }
    c.currency = *input.currency;
  }
  c.duration = input.duration.value_or("once");
  if (c.duration != "once" && c.duration != "repeating" && c.duration != "forever") {
    return fail(Errc::invalid_argument, "duration must be once, repeating or forever");
  }
  if (input.duration_months && (*input.duration_months < 1 || *input.duration_months > 120)) {
    return fail(Errc::invalid_argument, "duration_months must be between 1 and 120");
  }
  if (c.duration == "repeating" && !input.duration_months) {
    return fail(Errc::invalid_argument, "duration_months (1-120) is required with duration repeating");
  }
  c.duration_months = static_cast<int>(input.duration_months.value_or(0));
  if (input.max_redemptions && *input.max_redemptions < 1) {
    return fail(Errc::invalid_argument, "max_redemptions must be at least 1");
  }
  c.max_redemptions = input.max_redemptions;
  if (input.redeem_by) c.redeem_by = seconds(*input.redeem_by);
  c.id = new_uuid_v7(impl_->clock);
  c.created_at = impl_->now();
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_coupon_insert,
                          {Value(c.id), Value(c.code), Value(c.name), Value(c.percent_off_bps), Value(c.amount_off),
                           Value(c.currency), Value(c.duration), Value(std::int64_t{c.duration_months}),
                           opt(c.max_redemptions), opt(c.redeem_by), Value(true), time_value(c.created_at)});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) return fail(Errc::conflict, "a coupon with this code exists");
      return std::unexpected(ins.error());
    }
    audit::Event e{.action = "coupon.created", .resource_type = "coupon", .resource_id = c.id};
    e.changes = audit::created_changes(to_json(c));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return c;
}

Result<std::vector<Coupon>> Billing::list_coupons() {
  std::vector<Coupon> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_coupon_list);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_coupon(*rows, i));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Coupon> Billing::deactivate_coupon(const std::string& id, const audit::Context& who) {
  std::optional<Coupon> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto c = impl_->coupon(tx, id);
    if (!c) return std::unexpected(c.error());
    if (!*c) return fail(Errc::not_found, "no coupon " + id);
    auto up = tx.execute(k_coupon_deactivate, {Value((*c)->id), Value(false)});
    if (!up) return std::unexpected(up.error());
    audit::Event e{.action = "coupon.deactivated", .resource_type = "coupon", .resource_id = (*c)->id};
    audit::add_change(e.changes, "active", (*c)->active, false);
    if (auto a = impl_->audit.append(tx, who, e); !a) return a;
    (*c)->active = false;
    out = **c;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<TaxRateRow> Billing::put_tax_rate(const TaxRateInput& input, const audit::Context& who) {
  TaxRateRow t;
  if (!valid_country(input.country)) {
    return fail(Errc::invalid_argument, "country must be an ISO 3166-1 alpha-2 code such as DE");
  }
  t.country = input.country;
  t.region = input.region.value_or("");
  t.name = input.name.value_or("Tax");
  if (!input.bps) return fail(Errc::invalid_argument, "bps is required (basis points: 1900 = 19%)");
  if (*input.bps < 0 || *input.bps > 10000) return fail(Errc::invalid_argument, "bps must be between 0 and 10000");
  t.bps = *input.bps;
  t.inclusive = input.inclusive.value_or(false);
  t.id = new_uuid_v7(impl_->clock);
  t.created_at = impl_->now();
  std::optional<TaxRateRow> out;
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    auto ins = tx.execute(k_tax_upsert, {Value(t.id), Value(t.country), Value(t.region), Value(t.name), Value(t.bps),
                                         Value(t.inclusive), time_value(t.created_at)});
    if (!ins) return std::unexpected(ins.error());
    auto row = tx.execute(k_tax_get, {Value(t.country), Value(t.region)});
    if (!row) return std::unexpected(row.error());
    out = read_tax(*row, 0);
    audit::Event e{.action = "tax_rate.updated", .resource_type = "tax_rate", .resource_id = out->id};
    e.changes = audit::created_changes(to_json(*out));
    return impl_->audit.append(tx, who, e);
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<std::vector<TaxRateRow>> Billing::list_tax_rates() {
  std::vector<TaxRateRow> out;
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        auto rows = tx.execute(k_tax_list);
        if (!rows) return std::unexpected(rows.error());
        for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read_tax(*rows, i));
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<Json> Billing::catalog_rows(const std::vector<std::string>& plan_ids,
                                   const std::vector<std::string>& coupon_ids) {
  Json out{{"plans", Json::array()}, {"coupons", Json::array()}};
  auto r = impl_->catalog(
      [&](Transaction& tx) -> Result<void> {
        out = {{"plans", Json::array()}, {"coupons", Json::array()}};
        for (const auto& id : plan_ids) {
          auto plan = tx.execute(k_archive_plan, {Value(id)});
          if (!plan) return std::unexpected(plan.error());
          if (plan->empty()) continue;
          auto versions = tx.execute(k_archive_plan_versions, {Value(id)});
          if (!versions) return std::unexpected(versions.error());
          Json entry{{"plan", storage::row_json(plan->rows[0])}, {"versions", Json::array()}};
          for (const auto& row : versions->rows) entry["versions"].push_back(storage::row_json(row));
          out["plans"].push_back(std::move(entry));
        }
        for (const auto& id : coupon_ids) {
          auto coupon = tx.execute(k_archive_coupon, {Value(id)});
          if (!coupon) return std::unexpected(coupon.error());
          if (!coupon->empty()) out["coupons"].push_back(storage::row_json(coupon->rows[0]));
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<int> Billing::restore_catalog_rows(const Json& rows) {
  int added = 0;
  auto insert = [](Transaction& tx, const Statement& statement, const Json& row) -> Result<void> {
    auto values = storage::json_row(row);
    if (!values) return std::unexpected(values.error());
    auto r = tx.execute(statement, *values);
    if (!r && r.error().code == Errc::unique_violation) {
      return fail(Errc::conflict, "a plan or coupon of the archive has the code of another one here");
    }
    if (!r) return std::unexpected(r.error());
    return {};
  };
  auto r = impl_->catalog([&](Transaction& tx) -> Result<void> {
    added = 0;
    try {
      for (const auto& entry : rows.at("plans")) {
        const std::string id = entry.at("plan").at(0).get<std::string>();
        auto exists = tx.execute(k_archive_plan, {Value(id)});
        if (!exists) return std::unexpected(exists.error());
        if (!exists->empty()) continue;
        if (auto i = insert(tx, k_restore_plan, entry.at("plan")); !i) return i;
        for (const auto& version : entry.at("versions")) {
          if (auto i = insert(tx, k_restore_plan_version, version); !i) return i;
        }
        ++added;
      }
      for (const auto& row : rows.at("coupons")) {
        auto exists = tx.execute(k_archive_coupon, {Value(row.at(0).get<std::string>())});
        if (!exists) return std::unexpected(exists.error());
        if (!exists->empty()) continue;
        if (auto i = insert(tx, k_restore_coupon, row); !i) return i;
        ++added;
      }
    } catch (const Json::exception&) {
      return fail(Errc::invalid_argument, "the catalog rows are malformed");
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return added;
}

}  // namespace atrium::billing
