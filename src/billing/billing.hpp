#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "audit/audit_log.hpp"
#include "billing/calendar.hpp"
#include "billing/commands.hpp"
#include "billing/invoice_math.hpp"
#include "billing/invoicing/document.hpp"
#include "billing/payments/gateway.hpp"
#include "billing/proration.hpp"
#include "billing/quotas.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

// Billing: Atrium bills its tenants. The catalog (plans with versioned prices, coupons, tax rates) is the
// platform's; each tenant has a billing account, subscriptions, invoices, payment attempts, credit notes and test
// clocks, all in the control-plane database (billing is the platform's ledger, kept whatever the tenant's
// isolation level) and read through the tenant-scoped transaction. Money is int64 minor units of the row's
// currency; time is Unix seconds from the injected clock, or from the test clock a subscription is attached to.
// Thread-safe.

enum class Status { trial, active, past_due, paused, cancelled, unpaid };
std::string_view status_name(Status s);
std::optional<Status> parse_status(std::string_view text);

struct PlanPrice {
  int version = 1;
  std::string currency;
  Interval interval = Interval::monthly;
  std::int64_t base_price = 0;
  std::int64_t included_seats = 1;
  std::int64_t seat_price = 0;
  int trial_days = 0;
  Json features = Json::object();  // apiCalls, storage (GB), support, sla
  Json limits = Json::object();    // projects, integrations, customDomains (integer or "unlimited")
  std::vector<MeteredPrice> metered;
  std::vector<Quota> quotas;  // the explicit ones; plan_quotas() adds those features and limits imply
  DunningPolicy dunning;
  Instant created_at{};
};

struct Plan {
  std::string id;
  std::string code;
  std::string name;
  std::string tier;  // free | starter | professional | business | enterprise
  bool active = true;
  PlanPrice price;  // the version asked for (the current one unless stated)
  Instant created_at{};
  Instant updated_at{};
};

struct Coupon {
  std::string id;
  std::string code;
  std::string name;
  std::int64_t percent_off_bps = 0;
  std::int64_t amount_off = 0;
  std::string currency;  // for amount_off
  std::string duration;  // once | repeating | forever
  int duration_months = 0;
  std::optional<std::int64_t> max_redemptions;
  std::int64_t times_redeemed = 0;
  std::optional<Instant> redeem_by;
  bool active = true;
  Instant created_at{};
};

struct TaxRateRow {
  std::string id;
  std::string country;
  std::string region;  // "" = the whole country
  std::string name;
  std::int64_t bps = 0;
  bool inclusive = false;
  Instant created_at{};
};

struct Account {
  std::string tenant_id;
  std::string legal_name;
  std::string email;
  std::vector<std::string> address;
  std::string country;
  std::string region;
  std::string currency;
  std::vector<std::string> tax_ids;
  std::string payment_method;
  std::int64_t credit_balance = 0;
  ProrationMode proration = ProrationMode::daily;
  bool test_mode = false;
  Instant created_at{};
  Instant updated_at{};
};

struct Subscription {
  std::string tenant_id;
  std::string id;
  std::string plan_id;
  int plan_version = 1;
  Status status = Status::active;
  std::int64_t seats = 1;
  Instant anchor{};
  std::int64_t cycle = 0;  // current_period_end == boundary(anchor, interval, cycle)
  Instant current_period_start{};
  Instant current_period_end{};
  std::optional<Instant> trial_end;
  bool cancel_at_period_end = false;
  std::optional<Instant> cancelled_at;
  std::optional<Instant> paused_at;
  std::optional<std::string> coupon_id;
  std::optional<Instant> coupon_start;
  std::int64_t coupon_uses = 0;
  // Whether the invoice that opened the current period carried the coupon's discount, so changes within the period
  // are prorated at what was paid. Set whenever a period starts; nullopt only on rows from before it was recorded
  // (then derived from the coupon's rules).
  std::optional<bool> period_discounted;
  std::optional<std::string> test_clock_id;
  Instant created_at{};
  Instant updated_at{};
};

struct Invoice {
  std::string tenant_id;
  std::string id;
  std::optional<std::string> number;
  std::optional<std::string> subscription_id;
  std::string status;  // draft | open | paid | void | uncollectible
  std::string billing_reason;
  std::string currency;
  Instant period_start{};
  Instant period_end{};
  Totals totals;
  std::string discount_label;
  std::string tax_label;
  std::int64_t amount_paid = 0;
  std::int64_t amount_remaining = 0;
  int attempt_count = 0;
  std::optional<Instant> next_payment_attempt;
  std::int64_t dunning_grace_hours = 0;  // Billing::extend_dunning: the dunning schedule falls this much later
  Json customer = Json::object();
  std::string memo;
  std::optional<std::string> test_clock_id;
  Instant created_at{};
  std::optional<Instant> finalized_at;
  std::optional<Instant> due_at;  // finalized_at + billing.days_until_due, fixed at finalization
  std::optional<Instant> paid_at;
  std::optional<Instant> voided_at;
  std::vector<Line> lines;
};

struct PaymentAttempt {
  std::string id;
  std::string invoice_id;
  int attempt = 0;
  std::string idempotency_key;
  std::int64_t amount = 0;
  std::string currency;
  std::string payment_method;
  std::string status;  // pending | succeeded | failed
  std::string failure_code;
  std::string decline;
  std::string message;
  std::string reference;
  Instant created_at{};
  std::optional<Instant> completed_at;
};

struct CreditNote {
  std::string tenant_id;
  std::string id;
  std::string number;
  std::string invoice_id;
  std::int64_t amount = 0;
  std::string method;  // refund | credit_balance | invoice (reduces what an open invoice still asks)
  std::string reason;
  std::string memo;
  std::string reference;
  Instant created_at{};
};

struct TestClock {
  std::string id;
  std::string name;
  Instant frozen_time{};
  Instant created_at{};
};

Json to_json(const Plan& p);
Json to_json(const Coupon& c);
Json to_json(const TaxRateRow& t);
Json to_json(const Account& a);
Json to_json(const Subscription& s);
Json to_json(const Invoice& i);
Json to_json(const PaymentAttempt& a);
Json to_json(const CreditNote& c);
Json to_json(const TestClock& c);

struct Settings {
  // Downgrades credit the account balance with the proration net (true), or give nothing back (false).
  bool downgrade_credit = true;
  std::int64_t days_until_due = 0;  // shown on documents; charges are attempted at finalization
  Json issuer = Json::object();     // name, email, address lines, country, tax_ids: the seller on documents
  int run_batch = 500;              // subscriptions per billing-run transaction
};

struct RunStats {
  std::int64_t renewed = 0;    // periods that ended and were invoiced (or ended: trials, cancellations)
  std::int64_t invoices = 0;   // invoices created
  std::int64_t charged = 0;    // charges that succeeded
  std::int64_t failed = 0;     // charges that failed
  std::int64_t retried = 0;    // dunning retries attempted
  std::int64_t cancelled = 0;  // subscriptions ended (at period end or by dunning)
};

// The metric's value over [from, to) for the tenant of `tx` (a control-plane tenant transaction): what a renewal
// prices. metering::Metering::measure, installed by the platform.
using UsageMeter = std::function<Result<std::int64_t>(tenancy::TenantTransaction& tx, const std::string& metric,
                                                      Instant from, Instant to)>;

// The plan a tenant's quotas come from: its latest subscription that is not cancelled and that plan version, or,
// without one, the current version of the plan its tenant record names (none when it names none).
struct PlanInForce {
  std::optional<Subscription> subscription;
  std::optional<Plan> plan;
  // Where the subscription's previous period started, when it had one that was invoiced (not after a trial).
  std::optional<Instant> previous_period_start;
};

class Billing {
 public:
  // `control` is the control-plane database; `data` scopes tenant transactions; `events_committed` is called after
  // a commit that emitted events (wakes the relay). All must outlive this object.
  Billing(storage::Database& control, tenancy::TenantData& data, audit::AuditLog& audit, const Clock& clock,
          PaymentGateway& gateway, Settings settings, std::function<void()> events_committed);
  ~Billing();

  // Catalog (platform). Errors are invalid_argument naming the field, conflict for a duplicate code.
  Result<Plan> create_plan(const NewPlan& input, const audit::Context& who);
  // Changing price fields creates a new version (existing subscriptions keep theirs); name/active do not.
  Result<Plan> update_plan(const std::string& id, const PlanUpdate& input, const audit::Context& who);
  Result<std::vector<Plan>> list_plans(bool include_inactive);
  Result<Plan> get_plan(const std::string& id_or_code, std::optional<int> version = std::nullopt);
  Result<Coupon> create_coupon(const NewCoupon& input, const audit::Context& who);
  Result<std::vector<Coupon>> list_coupons();
  Result<Coupon> deactivate_coupon(const std::string& id, const audit::Context& who);
  // The catalog rows a tenant's subscriptions name, as stored: the plans (each with every version) and coupons of
  // these ids, for a tenant archive (app/tenant_archive.hpp) to import into an Atrium whose catalog lacks them.
  // {"plans": [{"plan": row, "versions": [row, ...]}, ...], "coupons": [row, ...]}; unknown ids are left out.
  Result<Json> catalog_rows(const std::vector<std::string>& plan_ids, const std::vector<std::string>& coupon_ids);
  // Adds the rows of catalog_rows that are missing here, in one transaction (a plan or coupon whose id exists here
  // is kept as it is). conflict when a missing one's code belongs to another plan or coupon here. Returns how many
  // plans and coupons it added.
  Result<int> restore_catalog_rows(const Json& rows);
  Result<TaxRateRow> put_tax_rate(const TaxRateInput& input, const audit::Context& who);
  Result<std::vector<TaxRateRow>> list_tax_rates();

  // The tenant's side. `who` is recorded in the audit log; `super_admin` allows what only the operator may do
  // (test_mode, one-off invoices, voiding, credit notes).
  Result<Account> get_account(const std::string& tenant_id);
  Result<Account> put_account(const std::string& tenant_id, const AccountUpdate& input, bool super_admin,
                              const audit::Context& who);

  Result<Subscription> create_subscription(const std::string& tenant_id, const NewSubscription& input,
                                           const audit::Context& who);
  Result<std::vector<Subscription>> list_subscriptions(const std::string& tenant_id);
  Result<Subscription> get_subscription(const std::string& tenant_id, const std::string& id);
  // The lines a change would add now, without changing anything.
  Result<Json> preview_change(const std::string& tenant_id, const std::string& id, const PlanChange& input);
  Result<Subscription> change_subscription(const std::string& tenant_id, const std::string& id, const PlanChange& input,
                                           const audit::Context& who);
  Result<Subscription> pause(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  Result<Subscription> resume(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  Result<Subscription> cancel(const std::string& tenant_id, const std::string& id, const Cancellation& input,
                              const audit::Context& who);
  // Cancels every subscription of the tenant that is not cancelled yet, now (a deleted tenant): each recorded as
  // subscription.cancelled with `reason` on its event. Returns how many it cancelled.
  Result<std::int64_t> cancel_all(const std::string& tenant_id, std::string_view reason, const audit::Context& who);

  // The tenant's invoices with their lines, newest first, at most 500; `status` filters when not empty.
  Result<std::vector<Invoice>> list_invoices(const std::string& tenant_id, const std::string& status);
  Result<Invoice> get_invoice(const std::string& tenant_id, const std::string& id);
  Result<std::vector<PaymentAttempt>> list_attempts(const std::string& tenant_id, const std::string& invoice_id);
  // A one-off draft invoice (super admin).
  Result<Invoice> create_invoice(const std::string& tenant_id, const ManualInvoice& input, const audit::Context& who);
  Result<Invoice> finalize_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  // Charges an open invoice now with the account's payment method (also after a hard decline, once the method
  // changed). conflict unless open.
  Result<Invoice> pay_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  Result<Invoice> void_invoice(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  Result<Invoice> mark_uncollectible(const std::string& tenant_id, const std::string& id, const audit::Context& who);
  // Gives each of the tenant's open invoices still in dunning (a retry or the final action ahead) `hours` of grace:
  // its remaining retries and the end of its dunning window fall that much later (a payment in flight is sent again
  // when it was to be). Each is audited (invoice.dunning_extended). invalid_argument outside 1-2160 hours; conflict
  // when no invoice is in dunning.
  Result<std::vector<Invoice>> extend_dunning(const std::string& tenant_id, std::int64_t hours,
                                              const audit::Context& who);
  Result<InvoiceDocument> document(const std::string& tenant_id, const std::string& id);

  Result<CreditNote> create_credit_note(const std::string& tenant_id, const NewCreditNote& input,
                                        const audit::Context& who);
  Result<std::vector<CreditNote>> list_credit_notes(const std::string& tenant_id);

  Result<TestClock> create_test_clock(const std::string& tenant_id, const NewTestClock& input,
                                      const audit::Context& who);
  Result<std::vector<TestClock>> list_test_clocks(const std::string& tenant_id);
  Result<TestClock> get_test_clock(const std::string& tenant_id, const std::string& id);
  // Moves the clock forward to `to` and runs, in time order, everything that falls due on its subscriptions:
  // trial ends, renewals, cancellations at period end, dunning retries. invalid_argument when `to` is not later.
  Result<TestClock> advance_test_clock(const std::string& tenant_id, const std::string& id, Instant to,
                                       const audit::Context& who);
  Result<void> delete_test_clock(const std::string& tenant_id, const std::string& id, const audit::Context& who);

  // The billing run: everything due at the real clock's now on subscriptions without a test clock: trial ends,
  // renewals (invoice finalized and charged), cancellations at period end, dunning retries, and charges a
  // crashed run left pending. Idempotent per subscription and period (an invoice is unique per cycle, created in
  // the transaction that moves the period on); a charge repeats its idempotency key. `progress(done, total)`.
  Result<RunStats> run(const std::function<void(std::int64_t done, std::int64_t total)>& progress = {});

  // Monthly recurring revenue per currency now: the sum of active and past-due subscriptions' MRR (base plus extra
  // seats, net of a recurring coupon in force, without tax; test clocks excluded), each normalised to a month
  // (quarterly / 3, annual / 12) and rounded as the MRR ledger records it (docs/analytics.md, MRR).
  Result<std::map<std::string, std::int64_t>> mrr();

  // Renewal invoices price the ended period's usage with the plan version's metered prices (`meter` measures it),
  // and bill what events arriving up to `grace_seconds` after a period's end changed on the following renewals.
  // Without a meter, metered prices are not billed. Call before the first run; not synchronized.
  void set_usage_meter(UsageMeter meter, std::chrono::seconds grace);

  // The plan in force for the tenant of `tx` (a control-plane tenant transaction); see PlanInForce. The one
  // definition: quotas and entitlements, the gateway's rate limits and billing all use it.
  Result<PlanInForce> plan_in_force(tenancy::TenantTransaction& tx, const std::string& fallback_plan);
  // The same in a transaction of its own, with the tenant's catalog plan (`tenants.plan`) as the fallback.
  Result<PlanInForce> plan_in_force(const tenancy::Tenant& tenant);

  // Called with a tenant's id after a committed change that may have moved its plan in force (a subscription
  // created, changed to another plan, or changing status: cancelled, by the tenant, at the period end or by dunning;
  // paused, resumed), whichever path made it (the API, the billing run, a test clock, the CLI), so the caches of
  // what the plan grants are dropped at once on this instance. Call before use; not synchronized.
  void on_plan_changed(std::function<void(const std::string& tenant_id)> changed);

  // Every tenant statement, for the test that checks their names are unique.
  static std::vector<tenancy::TenantStatement> tenant_statements();

  // The columns encrypted at rest (the account's personal fields, each invoice's copy of them), for re-encryption.
  static std::vector<tenancy::SealedColumn> sealed_columns();

  // What purging a tenant deletes at once (`tenant_id = $1`, in its control-plane transaction): the billing account
  // (payment method, address, tax ids), subscriptions, test clocks, quota overrides and notices, and usage billing
  // records. Invoices, their lines, payment attempts and credit notes are kept (bookkeeping law; each invoice keeps
  // its own copy of the customer's details) until apply_retention.
  static std::vector<tenancy::TenantStatement> purge_statements();
  // Deletes the invoices, invoice lines, payment attempts and credit notes of tenants purged before `cutoff`
  // (billing.retain_invoices_years). Returns how many invoices went. Safe to repeat.
  Result<std::int64_t> apply_retention(std::chrono::system_clock::time_point cutoff);

  // Billing's internals (src/billing/detail/state.hpp), named here so billing's own files can pass it to their
  // helpers; no header outside src/billing/ defines it.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::billing
