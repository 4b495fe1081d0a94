#pragma once

// The JSON bodies of the billing routes (docs/openapi.yaml) decoded into billing's typed commands: unknown members,
// wrong types and oversized values are invalid_argument naming the member. Billing checks the rules.

#include "billing/commands.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::api::billing_input {

Result<billing::NewPlan> new_plan(const Json& body);
Result<billing::PlanUpdate> plan_update(const Json& body);
Result<billing::NewCoupon> new_coupon(const Json& body);
Result<billing::TaxRateInput> tax_rate(const Json& body);
Result<billing::AccountUpdate> account_update(const Json& body);
Result<billing::NewSubscription> new_subscription(const Json& body);
Result<billing::PlanChange> plan_change(const Json& body);
// "always_invoice" | "none" (create_prorations is refused, saying why).
Result<billing::ProrationBehavior> proration_behavior(std::string_view text);
Result<billing::Cancellation> cancellation(const Json& body);
Result<billing::ManualInvoice> manual_invoice(const Json& body);
Result<billing::NewCreditNote> new_credit_note(const Json& body);
Result<billing::NewTestClock> new_test_clock(const Json& body);
// PUT /v1/entitlements/{name}: {"metric", "limit" (required: an integer or "unlimited"), "enforcement"}.
Result<billing::QuotaOverride> quota_override(const std::string& name, const Json& body);

}  // namespace atrium::api::billing_input
