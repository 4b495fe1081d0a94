#pragma once

// Sales and marketing spend (docs/analytics.md, CAC): the platform's own figures, recorded by super admins per
// calendar month, channel and currency, read by the SaaS metrics for CAC and its payback. The control-plane
// database's marketing_spend table; no tenant.

#include <cstdint>
#include <string>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "storage/database.hpp"

namespace atrium::analytics {

struct Spend {
  std::string month;        // YYYY-MM
  std::string channel;      // 1-64 of a-z, 0-9, '_', '-', '.'
  std::string currency;     // ISO 4217
  std::int64_t amount = 0;  // minor units, 0 to 10^15
  Instant created_at{};
  Instant updated_at{};
};

bool valid_month(std::string_view text);     // YYYY-MM, 2000-01 to 2999-12
bool valid_currency(std::string_view text);  // three capital letters (ISO 4217's form)

// Sets the spend of (month, channel, currency) to `amount` (0 clears it), recorded as analytics.spend_recorded in
// the platform's audit chain with the amount before and after. invalid_argument for a bad field.
Result<Spend> record_spend(storage::Database& control, const Clock& clock, const Spend& spend,
                           const audit::Recorder& audit);

// The spend of the months [from, to] (YYYY-MM, inclusive), by month, channel and currency.
Result<std::vector<Spend>> list_spend(storage::Database& control, const std::string& from, const std::string& to);

Json to_json(const Spend& s);

}  // namespace atrium::analytics
