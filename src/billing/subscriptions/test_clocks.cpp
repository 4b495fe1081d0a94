#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/payments/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

namespace {

constexpr int k_max_advance_steps = 20'000;
constexpr Instant k_latest_clock_time{std::chrono::seconds(7'258'118'400)};  // 2200-01-01: far from time_point limits

}  // namespace

// ---- test clocks ------------------------------------------------------------------------------------------------

Result<TestClock> Billing::create_test_clock(const std::string& tenant_id, const NewTestClock& input,
                                             const audit::Context& who) {
  if (input.frozen_time && (*input.frozen_time < Instant{} || *input.frozen_time > k_latest_clock_time)) {
    return fail(Errc::invalid_argument, "frozen_time must be between 1970 and 2200");
  }
  Impl& s = *impl_;
  TestClock c{new_uuid_v7(s.clock), input.name, input.frozen_time ? seconds(*input.frozen_time) : s.now(), s.now()};
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto acct = s.account(tx);
    if (!acct) {
      if (acct.error().code == Errc::not_found) return fail(Errc::conflict, acct.error().message);
      return std::unexpected(acct.error());
    }
    if (!acct->test_mode) return fail(Errc::conflict, "test clocks need a billing account in test mode");
    auto ins =
        tx.execute(k_clock_insert, {Value(c.id), Value(c.name), time_value(c.frozen_time), time_value(c.created_at)});
    if (!ins) return std::unexpected(ins.error());
    return s.record(tx, &who, "test_clock.created", "test_clock", c.id, audit::created_changes(to_json(c)));
  });
  if (!r) return std::unexpected(r.error());
  return c;
}

Result<std::vector<TestClock>> Billing::list_test_clocks(const std::string& tenant_id) {
  return impl_->tenant_rows(tenant_id, k_clock_list, {}, &read_clock);
}

Result<TestClock> Billing::get_test_clock(const std::string& tenant_id, const std::string& id) {
  std::optional<TestClock> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto c = impl_->test_clock(tx, id);
                           if (!c) return std::unexpected(c.error());
                           out = *c;
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

Result<TestClock> Billing::advance_test_clock(const std::string& tenant_id, const std::string& id, Instant to,
                                              const audit::Context& who) {
  Impl& s = *impl_;
  to = seconds(to);  // billing counts whole seconds
  auto start = get_test_clock(tenant_id, id);
  if (!start) return start;
  if (to <= start->frozen_time) return fail(Errc::invalid_argument, "frozen_time must be later than the clock's");
  if (to > k_latest_clock_time) return fail(Errc::invalid_argument, "frozen_time must be before 2200");
  if (to - start->frozen_time > std::chrono::days(5 * 366)) {
    return fail(Errc::invalid_argument, "a test clock advances at most 5 years at a time");
  }
  // Step from one due moment to the next, so renewals, retries and dunning happen in the order they would.
  for (int step = 0; step < k_max_advance_steps; ++step) {
    std::vector<PendingCharge> charges;
    Instant at = to;
    bool done = false;
    auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
      charges.clear();
      auto clock = s.test_clock(tx, id, true);
      if (!clock) return std::unexpected(clock.error());
      // Charges whose outcome a crash left unrecorded are sent again first, with their idempotency keys.
      auto pending = tx.execute(k_attempt_pending_of_clock, {Value(id)});
      if (!pending) return std::unexpected(pending.error());
      for (std::size_t i = 0; i < pending->rows.size(); ++i) {
        const auto& p = *pending;
        charges.push_back(PendingCharge{
            tenant_id, p.text_at(i, 0).value_or(""),
            ChargeRequest{p.text_at(i, 1).value_or(""), p.text_at(i, 2).value_or(""), p.int_at(i, 3).value_or(0),
                          p.text_at(i, 4).value_or(""), p.text_at(i, 5).value_or("")}});
      }
      auto subs = tx.execute(Impl::postgres(tx) ? k_sub_of_clock_locked : k_sub_of_clock, {Value(id)});
      if (!subs) return std::unexpected(subs.error());
      Instant next = to;
      for (std::size_t i = 0; i < subs->rows.size(); ++i) {
        Subscription sub = read_sub(*subs, i);
        if (sub.status == Status::trial || sub.status == Status::active || sub.status == Status::past_due) {
          next = std::min(next, sub.current_period_end);
        }
      }
      auto retry = tx.execute(k_invoice_retry_of_clock, {Value(id)});
      if (!retry) return std::unexpected(retry.error());
      if (auto t = opt_time(*retry, 0, 0)) next = std::min(next, *t);
      at = std::max(next, clock->frozen_time);
      if (auto u = tx.execute(k_clock_set, {Value(id), time_value(at)}); !u) return std::unexpected(u.error());
      auto acct_result = s.account(tx);
      if (!acct_result) return std::unexpected(acct_result.error());
      Account acct = std::move(*acct_result);
      for (std::size_t i = 0; i < subs->rows.size(); ++i) {
        Subscription sub = read_sub(*subs, i);
        if (auto a = s.advance_subscription(tx, sub, acct, at, charges, nullptr); !a) return a;
      }
      auto due = tx.execute(k_invoice_due_of_clock, {Value(id), time_value(at)});
      if (!due) return std::unexpected(due.error());
      for (std::size_t i = 0; i < due->rows.size(); ++i) {
        if (auto rt = s.retry_invoice(tx, due->text_at(i, 0).value_or(""), at, charges, nullptr); !rt) return rt;
      }
      done = at >= to && charges.empty();
      return {};
    });
    if (!r) return std::unexpected(r.error());
    s.notify();
    if (auto st = s.settle(
            charges, tenant_id, [&](const PendingCharge&) { return at; }, nullptr);
        !st) {
      return std::unexpected(st.error());
    }
    if (done || (at >= to && charges.empty())) break;
  }
  auto r = s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    Json changes = Json::object();
    audit::add_change(changes, "frozen_time", time_json(start->frozen_time), time_json(to));
    return s.record(tx, &who, "test_clock.advanced", "test_clock", id, changes);
  });
  if (!r) return std::unexpected(r.error());
  return get_test_clock(tenant_id, id);
}

Result<void> Billing::delete_test_clock(const std::string& tenant_id, const std::string& id,
                                        const audit::Context& who) {
  Impl& s = *impl_;
  return s.tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto c = s.test_clock(tx, id);
    if (!c) return std::unexpected(c.error());
    auto used = tx.execute(k_clock_in_use, {Value(id)});
    if (!used) return std::unexpected(used.error());
    if (used->int_at(0, 0).value_or(0) > 0) {
      return fail(Errc::conflict, "cancel the subscriptions attached to this test clock first");
    }
    auto open = tx.execute(k_clock_open_invoices, {Value(id)});
    if (!open) return std::unexpected(open.error());
    if (open->int_at(0, 0).value_or(0) > 0) {
      return fail(Errc::conflict, "void or settle the open invoices on this test clock first");
    }
    auto d = tx.execute(k_clock_delete, {Value(id)});
    if (!d) return std::unexpected(d.error());
    return s.record(tx, &who, "test_clock.deleted", "test_clock", id, Json::object());
  });
}

}  // namespace atrium::billing
