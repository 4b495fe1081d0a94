#include <algorithm>
#include <array>

#include "billing/accounts/sql.hpp"
#include "billing/detail/state.hpp"
#include "billing/invoicing/sql.hpp"
#include "billing/subscriptions/sql.hpp"

namespace atrium::billing {

Result<Account> Billing::Impl::account(TenantTransaction& tx, bool lock) {
  auto r = tx.execute(lock && postgres(tx) ? k_account_get_locked : k_account_get);
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "this tenant has no billing account yet (PUT /v1/billing-account)");
  return read_account(tx, *r, 0);
}

// ---- account ----------------------------------------------------------------------------------------------------

Result<Account> Billing::get_account(const std::string& tenant_id) {
  std::optional<Account> out;
  auto r = impl_->tenant(tenant_id,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto a = impl_->account(tx, false);
                           if (!a) return std::unexpected(a.error());
                           out = std::move(*a);
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return *out;
}

namespace {

// Who the account is: legal name, email, country, region, address lines and tax ids (the ones `input` gives).
Result<void> apply_contact(Account& a, const AccountUpdate& input) {
  if (input.legal_name) a.legal_name = *input.legal_name;
  if (input.email) a.email = *input.email;
  if (input.region) a.region = *input.region;
  if (a.legal_name.empty()) return fail(Errc::invalid_argument, "legal_name is required");
  if (!valid_email_address(a.email)) return fail(Errc::invalid_argument, "email must be an email address");
  if (input.country) {
    if (!valid_country(*input.country)) {
      return fail(Errc::invalid_argument, "country must be an ISO 3166-1 alpha-2 code such as DE");
    }
    a.country = *input.country;
  }
  if (input.address) a.address = *input.address;
  if (input.tax_ids) a.tax_ids = *input.tax_ids;
  return {};
}

// The account's currency: set when it is created; changed later only while nothing is priced in it (no live
// subscription, no credit balance, no open invoice: amounts are minor units of the account's currency).
Result<void> apply_currency(TenantTransaction& tx, Account& a, const std::optional<std::string>& currency,
                            bool creating) {
  if (currency) {
    if (!valid_currency(*currency)) return fail(Errc::invalid_argument, "currency must be an ISO 4217 code");
    if (!creating && *currency != a.currency) {
      auto subs = tx.execute(k_sub_list);
      if (!subs) return std::unexpected(subs.error());
      for (std::size_t i = 0; i < subs->rows.size(); ++i) {
        if (read_sub(*subs, i).status != Status::cancelled) {
          return fail(Errc::conflict, "the currency cannot change while a subscription is live");
        }
      }
      if (a.credit_balance != 0) {
        return fail(Errc::conflict, "the currency cannot change while the account has a credit balance");
      }
      auto open = tx.execute(k_invoice_list, {Value(std::string("open"))});
      if (!open) return std::unexpected(open.error());
      if (!open->empty()) return fail(Errc::conflict, "the currency cannot change while an invoice is open");
    }
    a.currency = *currency;
  }
  if (a.currency.empty()) return fail(Errc::invalid_argument, "currency is required");
  return {};
}

// How the account pays and is billed: payment method (one the gateway accepts), proration, test mode (super admins).
Result<void> apply_payment(const PaymentGateway& gateway, Account& a, const AccountUpdate& input, bool super_admin) {
  if (input.payment_method) {
    if (!input.payment_method->empty() && !gateway.accepts(*input.payment_method)) {
      return fail(Errc::invalid_argument,
                  "payment_method is not accepted by the " + std::string(gateway.name()) + " gateway");
    }
    a.payment_method = *input.payment_method;
  }
  if (input.proration) {
    auto m = parse_proration_mode(*input.proration);
    if (!m) return fail(Errc::invalid_argument, "proration must be daily or per_second");
    a.proration = *m;
  }
  if (input.test_mode && *input.test_mode != a.test_mode) {
    if (!super_admin) return fail(Errc::forbidden, "only a super admin may change test_mode");
    a.test_mode = *input.test_mode;
  }
  return {};
}

// The plaintexts of the account's encrypted fields, in k_account_sealed's order.
std::array<std::string, k_account_sealed.size()> personal_fields(const Account& a) {
  return {a.legal_name, a.email, Json(a.address).dump(), Json(a.tax_ids).dump(), a.payment_method};
}

// Writes the account, its personal fields sealed; a new payment method has the open invoices retried at once (also
// after a hard decline).
Result<void> store_account(TenantTransaction& tx, const Account& a, const Account& before, bool creating, Instant now) {
  std::array<std::string, k_account_sealed.size()> sealed;
  const auto plain = personal_fields(a);
  for (std::size_t f = 0; f < sealed.size(); ++f) {
    auto s = tx.seal(k_account_sealed[f], a.tenant_id, plain[f]);
    if (!s) return std::unexpected(s.error());
    sealed[f] = std::move(*s);
  }
  if (creating) {
    auto ins = tx.execute(k_account_insert,
                          {Value(sealed[0]), Value(sealed[1]), Value(sealed[2]), Value(a.country), Value(a.region),
                           Value(a.currency), Value(sealed[3]), Value(sealed[4]), Value(std::int64_t{0}),
                           Value(std::string(proration_mode_name(a.proration))), Value(a.test_mode), time_value(now)});
    if (!ins) return std::unexpected(ins.error());
    return {};
  }
  auto up = tx.execute(k_account_update,
                       {Value(sealed[0]), Value(sealed[1]), Value(sealed[2]), Value(a.country), Value(a.region),
                        Value(a.currency), Value(sealed[3]), Value(sealed[4]),
                        Value(std::string(proration_mode_name(a.proration))), Value(a.test_mode), time_value(now)});
  if (!up) return std::unexpected(up.error());
  if (a.payment_method != before.payment_method && !a.payment_method.empty()) {
    if (auto rn = tx.execute(k_invoice_retry_now, {Value(std::int64_t{0})}); !rn) return std::unexpected(rn.error());
  }
  return {};
}

// The audit event of a put: every field that changed (none before, when it was created); the personal ones as
// ciphertext (audit::add_sealed_change).
Result<audit::Event> account_event(const TenantTransaction& tx, const Account& a, const Account& before,
                                   bool creating) {
  Json b = creating ? Json::object() : to_json(before);
  Json after = to_json(a);
  audit::Event e{.action = creating ? "billing_account.created" : "billing_account.updated",
                 .resource_type = "billing_account",
                 .resource_id = tx.tenant_id()};
  const auto plain_after = personal_fields(a);
  const auto plain_before = personal_fields(before);
  for (std::size_t f = 0; f < k_account_sealed.size(); ++f) {
    auto c = audit::add_sealed_change(tx, e.changes, k_account_sealed[f], tx.tenant_id(),
                                      creating ? std::nullopt : std::optional(plain_before[f]), plain_after[f]);
    if (!c) return std::unexpected(c.error());
  }
  for (auto it = after.begin(); it != after.end(); ++it) {
    if (it.key() == "updated_at" || it.key() == "created_at" || e.changes.contains(it.key())) continue;
    if (std::any_of(k_account_sealed.begin(), k_account_sealed.end(),
                    [&](const tenancy::SealedField& f) { return f.column == it.key(); })) {
      continue;  // unchanged personal field
    }
    audit::add_change(e.changes, it.key(), creating ? Json(nullptr) : b[it.key()], it.value());
  }
  return e;
}

}  // namespace

Result<Account> Billing::put_account(const std::string& tenant_id, const AccountUpdate& input, bool super_admin,
                                     const audit::Context& who) {
  std::optional<Account> out;
  auto r = impl_->tenant(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto existing = tx.execute(Impl::postgres(tx) ? k_account_get_locked : k_account_get);
    if (!existing) return std::unexpected(existing.error());
    const bool creating = existing->empty();
    Account a;
    if (!creating) {
      auto read = read_account(tx, *existing, 0);
      if (!read) return std::unexpected(read.error());
      a = std::move(*read);
    }
    const Account before = a;
    a.tenant_id = tenant_id;
    if (auto c = apply_contact(a, input); !c) return c;
    if (auto c = apply_currency(tx, a, input.currency, creating); !c) return c;
    if (auto p = apply_payment(impl_->gateway, a, input, super_admin); !p) return p;
    const Instant now = impl_->now();
    a.updated_at = now;
    if (creating) a.created_at = now;
    if (auto st = store_account(tx, a, before, creating, now); !st) return st;
    auto event = account_event(tx, a, before, creating);
    if (!event) return std::unexpected(event.error());
    if (auto ap = impl_->audit.append(tx, who, std::move(*event)); !ap) return ap;
    out = std::move(a);
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return *out;
}

}  // namespace atrium::billing
