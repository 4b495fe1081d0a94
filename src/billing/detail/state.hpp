#pragma once

// Billing's internals, shared by its concepts (catalog/, accounts/, subscriptions/, invoicing/, payments/, run/):
// the state behind the Billing facade, its transaction helpers, row readers and input checks. Only billing's own
// .cpp files include this header.

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>

#include "billing/billing.hpp"
#include "billing/money.hpp"
#include "core/email_address.hpp"
#include "core/failpoint.hpp"
#include "core/ids.hpp"
#include "core/json_input.hpp"
#include "core/log.hpp"
#include "events/outbox.hpp"

namespace atrium::billing {

using storage::Statement;
using storage::Transaction;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

inline constexpr std::chrono::hours k_hour{1};

namespace detail {

inline Value opt(const std::optional<std::int64_t>& v) { return v ? Value(*v) : Value(); }
inline Value opt(const std::optional<std::string>& v) { return v ? Value(*v) : Value(); }
inline Value opt(const std::optional<bool>& v) { return v ? Value(*v) : Value(); }
// Billing's instants are stored as Unix seconds (whole seconds: its clock readings are floored to the second).
inline Value time_value(Instant t) { return Value(unix_seconds(t)); }
inline Value opt(const std::optional<Instant>& v) { return v ? time_value(*v) : Value(); }
Instant time_at(const storage::ResultSet& r, std::size_t row, std::size_t col);  // NULL: the epoch
std::optional<Instant> opt_time(const storage::ResultSet& r, std::size_t row, std::size_t col);
std::optional<std::int64_t> opt_int(const storage::ResultSet& r, std::size_t row, std::size_t col);
std::optional<std::string> opt_text(const storage::ResultSet& r, std::size_t row, std::size_t col);
bool bool_at(const storage::ResultSet& r, std::size_t row, std::size_t col);
Json parse_stored(const std::string& text, Json fallback);
std::vector<std::string> string_list(const Json& j);
Json time_json(std::optional<Instant> t);
Instant seconds(std::chrono::system_clock::time_point t);
Json metered_json(const std::vector<MeteredPrice>& prices);
Json dunning_json(const DunningPolicy& d);
// The audit changes from one encoding of a resource to the next: every member that differs but updated_at.
Json changed_fields(const Json& before, const Json& after);
// The JSON member checks (core/json_input.hpp), for billing's stored JSON forms.
inline Result<void> only_members(const Json& input, std::initializer_list<std::string_view> allowed) {
  return json_input::only_members(input, allowed);
}
inline Result<std::optional<std::string>> text_member(const Json& input, const char* name, std::size_t max = 200) {
  return json_input::text(input, name, max);
}
inline Result<std::optional<std::int64_t>> int_member(const Json& input, const char* name, std::int64_t min,
                                                      std::int64_t max) {
  return json_input::integer(input, name, min, max);
}
inline constexpr std::int64_t k_max_amount = 1'000'000'000'000'000;  // 10^15 minor units: far above any real price
// Seconds past a period's grace before the run measures it a last time: an event accepted at the end of the grace
// has committed by then.
inline constexpr std::chrono::seconds k_usage_settle_margin{300};
// A quota value: a non-negative integer or "unlimited".
Result<void> check_limit_values(const Json& obj, const char* what, std::initializer_list<std::string_view> known);
// One metered price in billing's JSON form (commands.hpp's parse_metered_list reads a list of them).
Result<MeteredPrice> parse_metered(const Json& j);
// Each metered price valid, and at most one per metric.
Result<void> check_metered_list(const std::vector<MeteredPrice>& prices);
bool valid_country(std::string_view code);  // ISO 3166-1 alpha-2 form: two capital letters
Result<Plan> read_plan(const storage::ResultSet& r, std::size_t i);
Coupon read_coupon(const storage::ResultSet& r, std::size_t i);
TaxRateRow read_tax(const storage::ResultSet& r, std::size_t i);
// The account of row `i`, its personal fields opened (legal name, email, address, tax ids and payment method are
// encrypted at rest: k_account_sealed in accounts/sql.hpp).
Result<Account> read_account(const TenantTransaction& tx, const storage::ResultSet& r, std::size_t i);
Subscription read_sub(const storage::ResultSet& r, std::size_t i);
// An invoice row; its `customer` (the account's details when it was issued, encrypted at rest) stays sealed, a JSON
// string, until open_customer. Only the readers that show it open it.
Invoice read_invoice(const storage::ResultSet& r, std::size_t i);
inline constexpr tenancy::SealedField k_invoice_customer{"invoices", "customer"};
Result<std::string> seal_customer(const TenantTransaction& tx, const Invoice& inv);
Result<void> open_customer(const TenantTransaction& tx, Invoice& inv);
Line read_line(const storage::ResultSet& r, std::size_t i);
PaymentAttempt read_attempt(const storage::ResultSet& r, std::size_t i);
CreditNote read_credit(const storage::ResultSet& r, std::size_t i);
TestClock read_clock(const storage::ResultSet& r, std::size_t i);
// The price of one configuration for a whole period.
Result<std::int64_t> period_amount(const PlanPrice& price, std::int64_t seats);
// A subscription's monthly recurring revenue (docs/analytics.md, MRR): 0 unless active or past_due; else the period
// amount net of a forever coupon, or a repeating one still in force for the current period (a once coupon is a
// one-off, left out), divided by the interval's months and rounded half away from zero.
Result<std::int64_t> recurring_mrr(const PlanPrice& price, const Subscription& sub,
                                   const std::optional<Coupon>& coupon);
// A charge to make after the transaction that created its attempt commits.
struct PendingCharge {
  std::string tenant_id;
  std::string attempt_id;
  ChargeRequest request;
};
// A billing anchor that keeps the requested day of month even when the first boundary was clamped (day 31 asked
// in February ends the first period on the 28th; later periods must still end on the 31st where a month has one):
// the latest date on the requested day, a whole number of intervals before `first_end`, and that number of
// intervals (the subscription's cycle), so boundary(anchor, interval, cycle) == first_end.
std::pair<Instant, std::int64_t> anchor_keeping_day(Instant first_end, int day, Interval interval);
std::string invoice_number(int year_month_value, std::int64_t n, std::string_view prefix);

}  // namespace detail

using namespace detail;

struct Billing::Impl {
  storage::Database& db;
  tenancy::TenantData& data;
  audit::AuditLog& audit;
  const Clock& clock;
  PaymentGateway& gateway;
  Settings settings;
  std::function<void()> events_committed;

  std::mutex plan_mutex;
  std::unordered_map<std::string, Plan> plan_versions;   // "<plan id>:<version>": prices never change
  std::unordered_map<std::string, Coupon> coupons;       // by id: only active/times_redeemed change, not read here
  UsageMeter usage_meter;                                // null: plans' metered prices are not billed
  std::chrono::seconds usage_grace{0};                   // seconds late events are accepted after their period
  std::function<void(const std::string&)> plan_changed;  // see Billing::on_plan_changed

  // Tenants whose plan in force may have changed in this thread's open transaction; told to plan_changed once
  // the outermost transaction committed (a cache refilled before the commit would hold the old plan again).
  struct PlanChanges {
    int depth = 0;
    std::set<std::string> tenants;
  };
  static PlanChanges& plan_changes() {
    thread_local PlanChanges changes;
    return changes;
  }
  void mark_plan_changed(const std::string& tenant_id) { plan_changes().tenants.insert(tenant_id); }

  // Runs one transaction of `run`, then tells plan_changed what it changed, if it committed and is the outermost.
  Result<void> tracking_plan_changes(const std::function<Result<void>()>& run) {
    PlanChanges& changes = plan_changes();
    ++changes.depth;
    Result<void> r = run();
    if (--changes.depth > 0) return r;
    std::set<std::string> changed;
    changed.swap(changes.tenants);
    if (r && plan_changed) {
      for (const auto& tenant_id : changed) plan_changed(tenant_id);
    }
    return r;
  }

  Instant now() const { return seconds(clock.now()); }

  // Platform-wide work on every tenant's billing rows (the run, MRR): the platform scope (docs/security.md).
  // Tenants whose plan may have changed follow it (tenants.plan) before the transaction commits.
  Result<void> platform(const std::function<Result<void>(tenancy::PlatformTransaction&)>& body,
                        storage::TransactionOptions o = {}) {
    return tracking_plan_changes([&] {
      return data.transact_platform(
          [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
            if (auto r = body(ptx); !r) return r;
            const std::set<std::string> changed = plan_changes().tenants;
            for (const auto& tenant_id : changed) {
              TenantTransaction tx = ptx.tenant(tenant_id);
              if (auto f = follow_plan(tx); !f) return f;
            }
            return {};
          },
          o);
    });
  }

  // The catalog (plans, plan versions, coupons, tax rates) carries no tenant: the serving role's own transaction.
  Result<void> catalog(const std::function<Result<void>(Transaction&)>& body, storage::TransactionOptions o = {}) {
    return db.transact(body, o);
  }

  Result<void> tenant(const std::string& tenant_id, const std::function<Result<void>(TenantTransaction&)>& body,
                      storage::TransactionOptions o = {}) {
    return tracking_plan_changes([&] {
      return data.transact_control_plane(
          tenant_id,
          [&](TenantTransaction& tx) -> Result<void> {
            if (auto r = body(tx); !r) return r;
            const auto& changed = plan_changes().tenants;
            if (changed.contains(tx.tenant_id()) || changed.contains(tenant_id)) return follow_plan(tx);
            return {};
          },
          o);
    });
  }

  // Every row of one read-only tenant statement, each through `read`.
  template <class T>
  Result<std::vector<T>> tenant_rows(const std::string& tenant_id, const TenantStatement& statement,
                                     std::initializer_list<Value> params,
                                     T (*read)(const storage::ResultSet&, std::size_t)) {
    std::vector<T> out;
    auto r = tenant(tenant_id,
                    [&](TenantTransaction& tx) -> Result<void> {
                      auto rows = tx.execute(statement, params);
                      if (!rows) return std::unexpected(rows.error());
                      for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(read(*rows, i));
                      return {};
                    },
                    {.read_only = true});
    if (!r) return std::unexpected(r.error());
    return out;
  }

  static Transaction& raw(TenantTransaction& tx) { return *tx.control_plane(); }

  void notify() {
    if (events_committed) events_committed();
  }

  Result<void> emit(TenantTransaction& tx, std::string type, Json payload) {
    auto e = events::emit(raw(tx), clock, tx.tenant_id(), std::move(type), std::move(payload));
    if (!e) return std::unexpected(e.error());
    return {};
  }

  Result<void> record(TenantTransaction& tx, const audit::Context* who, std::string action, std::string type,
                      std::string id, Json changes) {
    if (who == nullptr) return {};
    audit::Event event{.action = std::move(action), .resource_type = std::move(type), .resource_id = std::move(id)};
    event.changes = std::move(changes);
    return audit.append(tx, *who, std::move(event));
  }

  // ---- catalog reads ----

  Result<Plan> plan_version(Transaction& tx, const std::string& plan_id, int version);

  Result<Plan> plan_current(Transaction& tx, const std::string& id_or_code);

  Result<std::optional<Coupon>> coupon(Transaction& tx, const std::string& id);

  Result<std::optional<TaxRateRow>> tax_for(Transaction& tx, const Account& account);

  // Write paths lock the account row on PostgreSQL: invoice totals depend on its credit balance.
  Result<Account> account(TenantTransaction& tx, bool lock = true);

  static bool postgres(TenantTransaction& tx) { return tx.backend() == storage::Backend::postgres; }

  Result<Subscription> subscription(TenantTransaction& tx, const std::string& id, bool lock = true);

  Result<Invoice> invoice(TenantTransaction& tx, const std::string& id, bool with_lines, bool lock = true);

  // Ends `sub` at `now` (status cancelled; its open invoices are no longer retried) and invoices the metered usage
  // of its period so far (final_usage) when it was billing one (active, past_due or paused); a charge of that
  // invoice joins `charges`. The caller saves it and settles the charges after the commit.
  Result<void> cancel_now(TenantTransaction& tx, Subscription& sub, Instant now, std::string_view reason,
                          std::vector<PendingCharge>& charges);

  // The plan in force: the plan version of the tenant's latest subscription that is not cancelled, else the current
  // version of the catalog plan `fallback_plan` names (none when empty or unknown).
  Result<PlanInForce> plan_in_force(TenantTransaction& tx, const std::string& fallback_plan);

  // tenants.plan follows the subscription: the code of the plan in force of its live subscription, or
  // tenancy::k_default_plan when none is left. Run in the transaction that marked the tenant's plan changed.
  Result<void> follow_plan(TenantTransaction& tx);

  // `lock`: one advance of a clock at a time (PostgreSQL; SQLite runs one writer).
  Result<TestClock> test_clock(TenantTransaction& tx, const std::string& id, bool lock = false);

  // The time a tenant's object lives in: its test clock's, or the real one.
  Result<Instant> now_for(TenantTransaction& tx, const std::optional<std::string>& clock_id);

  Result<std::int64_t> next_number(Transaction& tx, const std::string& counter);

  // ---- subscription state ----

  static bool allowed(Status from, Status to);

  // Every status change goes through here: validated, and recorded as a subscription.<status> event.
  Result<void> transition(TenantTransaction& tx, Subscription& sub, Status to, std::string_view reason);

  // Writes the row; `effective` (default: now) is when its MRR changed for the ledger (record_mrr).
  Result<void> save(TenantTransaction& tx, const Subscription& s, Instant now,
                    std::optional<Instant> effective = std::nullopt);

  // Appends `sub`'s state to the MRR ledger when its MRR, status, plan or seats differ from the last row recorded
  // (subscriptions on a test clock are left out). `at` never moves a subscription's ledger back in time.
  Result<void> record_mrr(TenantTransaction& tx, const Subscription& sub, Instant at);

  // The lines of one full period of `plan` with `seats`.
  static Result<std::vector<Line>> cycle_lines(const Plan& plan, std::int64_t seats, Instant start, Instant end);

  // The part of each line for [at, end) of a period that starts at `full_start` (a short first period).
  static Result<void> prorate_lines(std::vector<Line>& lines, Instant full_start, Instant end, Instant at,
                                    ProrationMode mode);

  struct IssueOptions {
    std::string reason;
    Instant period_start{};
    Instant period_end{};
    std::optional<std::string> cycle_key;
    bool with_coupon = false;
    std::string memo;
  };

  Result<std::pair<std::optional<Discount>, std::string>> coupon_for(TenantTransaction& tx, Subscription& sub,
                                                                     Instant period_start, bool consume);

  static std::string tax_label(const TaxRateRow& t);

  static Json customer_json(const Account& a);

  // An invoice's lines priced: discount (the coupon, consumed when `persist`), tax, the credit balance applied.
  Result<Invoice> price_invoice(TenantTransaction& tx, const Account& account, Subscription* sub,
                                std::vector<Line> lines, const IssueOptions& o, Instant now, bool persist);

  // Computes an invoice's totals; with `persist`, finalizes it: a number from the gap-free monthly sequence, the
  // account's credit balance used or increased, status paid (nothing due) or open with a first payment attempt.
  Result<Invoice> issue_invoice(TenantTransaction& tx, Account& account, Subscription* sub, std::vector<Line> lines,
                                const IssueOptions& o, Instant now, std::vector<PendingCharge>* charges, bool persist);

  Result<PendingCharge> new_attempt(TenantTransaction& tx, const Invoice& inv, const Account& account, int number,
                                    Instant now);

  Result<DunningPolicy> policy_for(TenantTransaction& tx, const Invoice& inv);

  // After the last failure: the subscription is cancelled (the invoice becomes uncollectible) or marked unpaid.
  Result<void> final_action(TenantTransaction& tx, Invoice& inv, const DunningPolicy& policy, Instant now,
                            RunStats* stats);

  Result<void> save_payment_state(TenantTransaction& tx, const Invoice& inv, Instant now);

  // A past-due or unpaid subscription that no longer owes anything (its invoices were paid, voided or credited)
  // is active again. Periods that passed while unpaid are not billed: a new period starts now (the next run, or the
  // clock's next step, invoices it, as its end is now).
  Result<void> settle_status(TenantTransaction& tx, const std::string& sub_id, Instant now, std::string_view reason);

  // Records a charge's outcome on its attempt, invoice and subscription (once: an attempt no longer pending is
  // left alone, so a repeated settle changes nothing).
  Result<void> record_outcome(TenantTransaction& tx, const PendingCharge& c, const Result<ChargeResult>& result,
                              Instant now, RunStats* stats);

  // The parts of record_outcome: no answer from the provider (sent again later), a payment, a failure (dunning).
  Result<void> outcome_unknown(TenantTransaction& tx, const PaymentAttempt& attempt, const std::string& message,
                               Instant now, RunStats* stats);
  Result<void> payment_succeeded(TenantTransaction& tx, const PaymentAttempt& attempt, const ChargeResult& result,
                                 Instant now, RunStats* stats);
  Result<void> payment_failed(TenantTransaction& tx, const PaymentAttempt& attempt, const ChargeResult& result,
                              Instant now, RunStats* stats);

  // Whether the invoice's last payment attempt has no known outcome yet (sent, or about to be sent again).
  Result<bool> payment_in_flight(TenantTransaction& tx, const std::string& invoice_id);

  // A dunning retry of an open invoice that is due at `now`: another attempt, or the final action after a hard
  // decline whose payment method did not change.
  Result<void> retry_invoice(TenantTransaction& tx, const std::string& invoice_id, Instant now,
                             std::vector<PendingCharge>& charges, RunStats* stats);

  // One metric's usage in one period of a subscription, as usage_billings records it.
  struct UsageRecord {
    bool insert = false;  // not stored yet
    bool billed_now = false;
    std::string metric;
    Instant period_start{};
    Instant period_end{};
    std::int64_t quantity = 0;  // as last measured
    std::int64_t included = 0;  // the soft quota's allowance when the period was first billed
    std::string price;          // the metered price (JSON) it is billed at
    std::int64_t amount = 0;    // the price of the measured quantity
    std::int64_t billed_quantity = 0;
    std::int64_t billed_amount = 0;  // on invoices so far
    Instant open_until{};
    bool settled = false;
    std::string invoice_id;  // the last invoice that billed it

    std::int64_t billable(std::int64_t q) const { return std::max<std::int64_t>(0, q - included); }
  };

  // Columns of USAGE_COLS from `first`.
  static UsageRecord read_usage(const storage::ResultSet& r, std::size_t i, std::size_t first);

  // Measures a recorded period again at `at` (late events), with the price and allowance recorded for it; it is
  // settled once `at` is past its grace.
  Result<void> remeasure(TenantTransaction& tx, UsageRecord& u, Instant at);

  static Line usage_line(std::string description, std::int64_t quantity, std::int64_t amount, Instant from, Instant to);

  // The usage lines of a renewal at `at`: first what late events changed in periods invoiced before (re-measured
  // while open; measured a last time by the run when their grace ended), then, with `bill_period`, the plan's metered
  // prices over the period [from, to) that just ended. A soft quota on a metric includes its limit: only the units
  // beyond it are priced.
  // `lock` false: a read-only transaction (a preview), which writes nothing of what it measured.
  Result<std::vector<Line>> usage_lines(TenantTransaction& tx, const Subscription& sub, const Plan& plan, Instant from,
                                        Instant to, bool bill_period, Instant at, std::vector<UsageRecord>& records,
                                        bool lock = true);

  // A period that ends without a renewal (cancelled at its end or now, ended while paused and cancelled): on one
  // invoice (billing reason `subscription_final`), what late events changed in earlier periods and, when `from` <
  // `to`, the metered usage of [from, to) at the subscription's plan version. No invoice when nothing is to be billed
  // (the periods are still recorded, so late events within the grace are billed when they settle). `at` is the
  // invoice's time.
  Result<void> final_usage(TenantTransaction& tx, Subscription& sub, Instant from, Instant to, Instant at,
                           std::vector<PendingCharge>& charges);

  // Writes `records`; those billed now name `invoice_id`.
  Result<void> save_usage(TenantTransaction& tx, const std::string& subscription_id,
                          const std::vector<UsageRecord>& records, const std::string& invoice_id, Instant now);

  // Everything due on one subscription at `now`: the trial's end, renewals (one invoice per period that ended),
  // cancellation at the period's end.
  Result<void> advance_subscription(TenantTransaction& tx, Subscription& sub, Account& acct, Instant now,
                                    std::vector<PendingCharge>& charges, RunStats* stats);

  // ---- the billing run's phases (run/run.cpp) ----

  // Subscriptions due at `now` (for progress).
  Result<std::int64_t> count_due(Instant now);
  // settle with every outcome recorded at `now` (the request's or the run's time).
  Result<void> settle_at(std::vector<PendingCharge>& charges, const std::optional<std::string>& tenant_id, Instant now,
                         RunStats* stats);
  // Refunds of credit notes the provider did not confirm, sent again (a failure waits for the next run).
  Result<void> retry_refunds();
  // Charges a crash left without an outcome, sent again with their idempotency keys.
  Result<void> resend_pending_charges(Instant now, int batch, RunStats& stats);
  // Renewals, trial ends and cancellations at period end; `progress` hears how many each batch handled.
  Result<void> renew_due(Instant now, int batch, RunStats& stats,
                         const std::function<void(std::int64_t renewed_in_batch)>& progress);
  // Metered periods whose grace ended, measured a last time and settled, one transaction each.
  Result<void> settle_usage_periods(Instant now, int batch);
  // Dunning retries that fell due.
  Result<void> retry_due_invoices(Instant now, int batch, RunStats& stats);

  // Sends a credit note's refund to the provider (idempotent per note) and stores its reference. A failure is
  // logged and left for the next billing run.
  Result<std::string> refund(const std::string& tenant_id, const std::string& note_id,
                             const std::string& charge_reference, std::int64_t amount, const std::string& currency);

  // Charges what was collected (after the transaction that created the attempts committed) and records the
  // outcomes; `at` is the time each outcome is recorded at (a test clock's). One transaction for all, scoped to
  // the tenant when given, else platform-wide.
  Result<void> settle(std::vector<PendingCharge>& charges, const std::optional<std::string>& tenant_id,
                      const std::function<Instant(const PendingCharge&)>& at, RunStats* stats);
};

}  // namespace atrium::billing
