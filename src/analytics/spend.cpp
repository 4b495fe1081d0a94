#include "analytics/spend.hpp"

#include <algorithm>

#include "analytics/sql.hpp"

namespace atrium::analytics {

namespace {

using storage::Value;

constexpr std::int64_t k_max_spend = 1'000'000'000'000'000;

bool digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_channel(std::string_view c) {
  return !c.empty() && c.size() <= 64 && std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
  });
}

Spend read(const storage::ResultSet& r, std::size_t i) {
  return {.month = r.text_at(i, 0).value_or(""),
          .channel = r.text_at(i, 1).value_or(""),
          .currency = r.text_at(i, 2).value_or(""),
          .amount = r.int_at(i, 3).value_or(0),
          .created_at = from_unix_seconds(r.int_at(i, 4).value_or(0)),
          .updated_at = from_unix_seconds(r.int_at(i, 5).value_or(0))};
}

}  // namespace

bool valid_currency(std::string_view c) {
  return c.size() == 3 && std::all_of(c.begin(), c.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; });
}

bool valid_month(std::string_view t) {
  if (t.size() != 7 || t[4] != '-' || !digits(t.substr(0, 4)) || !digits(t.substr(5))) return false;
  const int month = (t[5] - '0') * 10 + (t[6] - '0');
  return t[0] == '2' && month >= 1 && month <= 12;
}

Result<Spend> record_spend(storage::Database& control, const Clock& clock, const Spend& input,
                           const audit::Recorder& audit) {
  if (!valid_month(input.month)) return fail(Errc::invalid_argument, "month must be YYYY-MM (2000-01 to 2999-12)");
  if (!valid_channel(input.channel)) {
    return fail(Errc::invalid_argument, "channel must be 1-64 lowercase letters, digits, '_', '-' or '.'");
  }
  if (!valid_currency(input.currency)) {
    return fail(Errc::invalid_argument, "currency must be an ISO 4217 code (three capital letters)");
  }
  if (input.amount < 0 || input.amount > k_max_spend) {
    return fail(Errc::invalid_argument, "amount must be between 0 and " + std::to_string(k_max_spend));
  }
  Spend out;
  auto r = control.transact([&](storage::Transaction& tx) -> Result<void> {
    auto before = tx.execute(sql::k_spend_get, {Value(input.month), Value(input.channel), Value(input.currency)});
    if (!before) return std::unexpected(before.error());
    const Json was = before->empty() ? Json(nullptr) : Json(before->int_at(0, 3).value_or(0));
    const std::int64_t now = unix_seconds(clock.now());
    auto up = tx.execute(sql::k_spend_upsert, {Value(input.month), Value(input.channel), Value(input.currency),
                                               Value(input.amount), Value(now)});
    if (!up) return std::unexpected(up.error());
    auto after = tx.execute(sql::k_spend_get, {Value(input.month), Value(input.channel), Value(input.currency)});
    if (!after) return std::unexpected(after.error());
    if (after->empty()) return fail(Errc::internal, "the spend just written is not there");
    out = read(*after, 0);
    audit::Event event{.action = "analytics.spend_recorded",
                       .resource_type = "marketing_spend",
                       .resource_id = input.month + "/" + input.channel + "/" + input.currency};
    audit::add_change(event.changes, "amount", was, Json(input.amount));
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<Spend>> list_spend(storage::Database& control, const std::string& from, const std::string& to) {
  auto rows =
      storage::transact_value<storage::ResultSet>(control,
                                                  [&](storage::Transaction& tx) {
                                                    return tx.execute(sql::k_spend_range, {Value(from), Value(to)});
                                                  },
                                                  {.read_only = true});
  if (!rows) return std::unexpected(rows.error());
  std::vector<Spend> out;
  for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read(*rows, i));
  return out;
}

Json to_json(const Spend& s) {
  return {{"month", s.month},
          {"channel", s.channel},
          {"currency", s.currency},
          {"amount", s.amount},
          {"created_at", format_rfc3339(s.created_at)},
          {"updated_at", format_rfc3339(s.updated_at)}};
}

}  // namespace atrium::analytics
