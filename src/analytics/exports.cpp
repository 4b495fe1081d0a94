#include "analytics/exports.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <tuple>

#include "analytics/analytics.hpp"
#include "analytics/days.hpp"
#include "analytics/sql.hpp"
#include "core/clock.hpp"

namespace atrium::analytics {

namespace {

using reports::Csv;
using reports::csv_field;
using storage::Value;

std::optional<Instant> parse_date(const Json& parameters, const char* name) {
  auto it = parameters.find(name);
  if (it == parameters.end() || !it->is_string() || it->get_ref<const std::string&>().size() != 10) return {};
  return parse_rfc3339(it->get<std::string>() + "T00:00:00Z");
}

std::string ratio_text(const std::optional<double>& v) { return v ? std::to_string(*v) : std::string(); }

// Appends one CSV row of already safe or quoted fields.
void add_row(Csv& csv, std::initializer_list<std::string> fields) {
  bool first = true;
  for (const std::string& f : fields) {
    if (!first) csv.text += ',';
    first = false;
    csv.text += f;
  }
  csv.text += "\r\n";
  ++csv.rows;
}

Result<void> check_rows(std::size_t rows) {
  if (static_cast<std::int64_t>(rows) > k_max_export_rows) {
    return fail(Errc::invalid_argument, "the export would hold more than " + std::to_string(k_max_export_rows) +
                                            " rows; choose a shorter range or longer periods");
  }
  return {};
}

Csv cohorts_csv(const SaasMetrics& m) {
  Csv csv{.text =
              "currency,cohort,cohort_customers,cohort_mrr,month_offset,customers,mrr,logo_retention,"
              "net_revenue_retention,gross_revenue_retention\r\n"};
  for (const CurrencyMetrics& c : m.currencies) {
    for (const Cohort& co : c.cohorts) {
      for (const CohortMonth& cm : co.months) {
        add_row(csv,
                {c.currency, co.month, std::to_string(co.customers), std::to_string(co.mrr), std::to_string(cm.offset),
                 std::to_string(cm.customers), std::to_string(cm.mrr), std::to_string(cm.logo_retention),
                 ratio_text(cm.net_revenue_retention), ratio_text(cm.gross_revenue_retention)});
      }
    }
  }
  return csv;
}

// tenant id -> slug, for readable exports (purged tenants keep their id only).
using Slugs = std::map<std::string, std::string>;
Result<Slugs> slugs(tenancy::PlatformTransaction& ptx) {
  auto rs = ptx.control().execute(sql::k_export_tenant_slugs);
  if (!rs) return std::unexpected(rs.error());
  Slugs out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i)
    out[rs->text_at(i, 0).value_or("")] = rs->text_at(i, 1).value_or("");
  return out;
}

// Runs `body` in one read-only transaction of the platform scope, then reads the tenants' slugs in it.
Result<Slugs> read_with_slugs(tenancy::TenantData& data,
                              const std::function<Result<void>(tenancy::PlatformTransaction&)>& body) {
  Slugs names;
  auto r = data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        if (auto b = body(ptx); !b) return b;
        auto s = slugs(ptx);
        if (!s) return std::unexpected(s.error());
        names = std::move(*s);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return names;
}

struct RevenueRow {
  std::int64_t invoiced = 0;
  std::int64_t metered = 0;
  std::int64_t collected = 0;
  std::int64_t refunded = 0;
  std::int64_t credited = 0;
};

Result<Csv> revenue_csv(tenancy::TenantData& data, const SaasQuery& q) {
  // (period start, tenant, currency) -> amounts
  std::map<std::tuple<Instant, std::string, std::string>, RevenueRow> rows;
  auto names = read_with_slugs(data, [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    rows.clear();
    const Value range[] = {Value(unix_seconds(q.from)), Value(unix_seconds(q.to))};
    // Adds a statement's rows (tenant, currency, day, ..., amount at `amount_column`) to the amount `into`
    // picks of each row.
    auto fold = [&](const storage::Statement& statement, int amount_column,
                    const std::function<std::int64_t&(RevenueRow&, const storage::ResultSet&, std::size_t)>& into)
        -> Result<void> {
      auto rs = ptx.control().execute(statement, range);
      if (!rs) return std::unexpected(rs.error());
      for (std::size_t i = 0; i < rs->rows.size(); ++i) {
        const std::string currency = rs->text_at(i, 1).value_or("");
        if (q.currency && currency != *q.currency) continue;
        const Instant day = day_start(rs->int_at(i, 2).value_or(0));
        RevenueRow& row = rows[{period_start(day, q.granularity), rs->text_at(i, 0).value_or(""), currency}];
        into(row, *rs, i) += rs->int_at(i, amount_column).value_or(0);
      }
      return check_rows(rows.size());
    };
    using Amount = std::int64_t RevenueRow::*;
    const std::pair<const storage::Statement*, Amount> totals[] = {{&sql::k_export_invoiced, &RevenueRow::invoiced},
                                                                   {&sql::k_export_metered, &RevenueRow::metered},
                                                                   {&sql::k_export_collected, &RevenueRow::collected}};
    for (const auto& [statement, amount] : totals) {
      auto f = fold(*statement, 3, [amount](RevenueRow& row, const storage::ResultSet&, std::size_t) -> std::int64_t& {
        return row.*amount;
      });
      if (!f) return f;
    }
    return fold(sql::k_export_credit_notes, 4,
                [](RevenueRow& row, const storage::ResultSet& rs, std::size_t i) -> std::int64_t& {
                  return rs.text_at(i, 3).value_or("") == "refund" ? row.refunded : row.credited;
                });
  });
  if (!names) return std::unexpected(names.error());
  Csv csv{.text = "period_start,tenant_id,tenant_slug,currency,invoiced,metered,collected,refunded,credited\r\n"};
  for (const auto& [key, row] : rows) {
    const auto& [start, tenant, currency] = key;
    add_row(csv, {date_of(start), csv_field(tenant), csv_field((*names)[tenant]), csv_field(currency),
                  std::to_string(row.invoiced), std::to_string(row.metered), std::to_string(row.collected),
                  std::to_string(row.refunded), std::to_string(row.credited)});
  }
  return csv;
}

Result<Csv> usage_csv(tenancy::TenantData& data, const SaasQuery& q) {
  // (period start, tenant, metric) -> (quantity, events)
  std::map<std::tuple<Instant, std::string, std::string>, std::pair<std::int64_t, std::int64_t>> rows;
  auto names = read_with_slugs(data, [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
    rows.clear();
    auto rs = ptx.control().execute(sql::k_export_usage, {Value(unix_ms(q.from)), Value(unix_ms(q.to))});
    if (!rs) return std::unexpected(rs.error());
    for (std::size_t i = 0; i < rs->rows.size(); ++i) {
      const Instant day = day_start(rs->int_at(i, 2).value_or(0));
      auto& row =
          rows[{period_start(day, q.granularity), rs->text_at(i, 0).value_or(""), rs->text_at(i, 1).value_or("")}];
      row.first += rs->int_at(i, 3).value_or(0);
      row.second += rs->int_at(i, 4).value_or(0);
    }
    return check_rows(rows.size());
  });
  if (!names) return std::unexpected(names.error());
  Csv csv{.text = "period_start,tenant_id,tenant_slug,metric,quantity,events\r\n"};
  for (const auto& [key, row] : rows) {
    const auto& [start, tenant, metric] = key;
    add_row(csv, {date_of(start), csv_field(tenant), csv_field((*names)[tenant]), csv_field(metric),
                  std::to_string(row.first), std::to_string(row.second)});
  }
  return csv;
}

}  // namespace

std::optional<ExportType> parse_export_type(std::string_view text) {
  for (ExportType t : {ExportType::mrr_movements, ExportType::revenue, ExportType::usage, ExportType::cohorts}) {
    if (export_type_name(t) == text) return t;
  }
  return std::nullopt;
}

std::string_view export_type_name(ExportType type) {
  switch (type) {
    case ExportType::mrr_movements: return "mrr_movements";
    case ExportType::revenue: return "revenue";
    case ExportType::usage: return "usage";
    case ExportType::cohorts: return "cohorts";
  }
  return "mrr_movements";
}

Json export_parameters(const ExportRequest& r) {
  return {{"from", date_of(r.query.from)},
          {"to", date_of(r.query.to)},
          {"granularity", granularity_name(r.query.granularity)},
          {"currency", r.query.currency ? Json(*r.query.currency) : Json(nullptr)}};
}

Result<ExportRequest> export_request(std::string_view type, const Json& parameters) {
  auto t = parse_export_type(type);
  if (!t) return fail(Errc::invalid_argument, "type must be mrr_movements, revenue, usage or cohorts");
  if (!parameters.is_object()) return fail(Errc::invalid_argument, "parameters must be an object");
  ExportRequest r{.type = *t};
  auto from = parse_date(parameters, "from");
  auto to = parse_date(parameters, "to");
  if (!from || !to) return fail(Errc::invalid_argument, "from and to must be dates (YYYY-MM-DD)");
  r.query.from = *from;
  r.query.to = *to;
  auto g = parameters.find("granularity");
  if (g != parameters.end() && !g->is_null()) {
    auto parsed = g->is_string() ? parse_granularity(g->get<std::string>()) : std::nullopt;
    if (!parsed) return fail(Errc::invalid_argument, "granularity must be day, week or month");
    r.query.granularity = *parsed;
  }
  auto c = parameters.find("currency");
  if (c != parameters.end() && !c->is_null()) {
    if (!c->is_string() || !valid_currency(c->get<std::string>())) {
      return fail(Errc::invalid_argument, "currency must be an ISO 4217 code (three capital letters)");
    }
    r.query.currency = c->get<std::string>();
  }
  if (auto checked = check(r.query); !checked) return std::unexpected(checked.error());
  return r;
}

Result<reports::Csv> build_export(Analytics& analytics, tenancy::TenantData& data, const ExportRequest& request) {
  switch (request.type) {
    case ExportType::revenue: return revenue_csv(data, request.query);
    case ExportType::usage: return usage_csv(data, request.query);
    case ExportType::mrr_movements:
    case ExportType::cohorts: break;
  }
  auto m = analytics.saas_metrics(request.query);
  if (!m) return std::unexpected(m.error());
  if (request.type == ExportType::cohorts) return cohorts_csv(*m);
  Csv csv{.text = movements_csv(*m)};
  csv.rows = static_cast<std::int64_t>(std::count(csv.text.begin(), csv.text.end(), '\n')) - 1;
  return csv;
}

}  // namespace atrium::analytics
