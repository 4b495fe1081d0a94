#include "billing/payments/gateway.hpp"

#include <array>

#include "core/ids.hpp"

namespace atrium::billing {

namespace {

using storage::Statement;
using storage::Value;

struct TestCard {
  std::string_view method;
  bool succeeds;
  bool network_error;
  std::string_view code;
  Decline decline;
  std::string_view message;
};

constexpr std::array<TestCard, 7> k_cards{{
    {"pm_card_visa", true, false, "", Decline::none, ""},
    {"pm_card_mastercard", true, false, "", Decline::none, ""},
    {"pm_card_chargeDeclined", false, false, "card_declined", Decline::soft, "Your card was declined."},
    {"pm_card_chargeDeclinedInsufficientFunds", false, false, "insufficient_funds", Decline::soft,
     "Your card has insufficient funds."},
    {"pm_card_chargeDeclinedLostCard", false, false, "lost_card", Decline::hard, "Your card was reported lost."},
    {"pm_card_chargeDeclinedExpiredCard", false, false, "expired_card", Decline::hard, "Your card has expired."},
    {"pm_card_networkError", false, true, "", Decline::none, ""},
}};

constexpr std::array<std::string_view, k_cards.size()> k_methods = [] {
  std::array<std::string_view, k_cards.size()> out{};
  for (std::size_t i = 0; i < k_cards.size(); ++i) out[i] = k_cards[i].method;
  return out;
}();

const TestCard* find_card(std::string_view method) {
  for (const auto& c : k_cards) {
    if (c.method == method) return &c;
  }
  return nullptr;
}

constexpr Statement k_get{"simgw_get",
                          "SELECT reference, kind, payment_method, amount, currency, outcome FROM simulated_charges "
                          "WHERE idempotency_key = $1"};
constexpr Statement k_put{"simgw_put",
                          "INSERT INTO simulated_charges (idempotency_key, reference, kind, payment_method, amount, "
                          "currency, outcome, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT "
                          "(idempotency_key) DO NOTHING"};
constexpr Statement k_charge_of{"simgw_charge_of",
                                "SELECT amount, currency FROM simulated_charges WHERE reference = $1 AND kind = "
                                "'charge' AND outcome = 'succeeded'"};
constexpr Statement k_refunded{
    "simgw_refunded",
    "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM simulated_charges WHERE kind = 'refund' AND "
    "payment_method = $1"};

ChargeResult result_for(const TestCard& card, std::string reference) {
  ChargeResult r;
  r.succeeded = card.succeeds;
  r.reference = std::move(reference);
  r.failure_code = std::string(card.code);
  r.decline = card.decline;
  r.message = std::string(card.message);
  return r;
}

class SimulatedGateway final : public PaymentGateway {
 public:
  SimulatedGateway(storage::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  std::string_view name() const override { return "simulated"; }
  bool accepts(std::string_view method) const override { return find_card(method) != nullptr; }

  Result<ChargeResult> charge(const ChargeRequest& request) override {
    auto all = charge_many(std::span<const ChargeRequest>(&request, 1));
    return std::move(all.front());
  }

  // One ledger transaction for the whole batch, as a provider's batch API would.
  std::vector<Result<ChargeResult>> charge_many(std::span<const ChargeRequest> requests) override {
    std::vector<Result<ChargeResult>> out;
    auto r = db_.transact([&](storage::Transaction& tx) -> Result<void> {
      out.clear();
      out.reserve(requests.size());
      const std::int64_t now =
          std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
      for (const auto& request : requests) {
        out.push_back(charge_one(tx, request, now));
      }
      return {};
    });
    if (!r) {
      out.assign(requests.size(), std::unexpected(Error{Errc::unavailable, "payment provider: " + r.error().message}));
    }
    return out;
  }

  Result<std::string> refund(const RefundRequest& request) override {
    return storage::transact_value<std::string>(db_, [&](storage::Transaction& tx) -> Result<std::string> {
      auto prior = tx.execute(k_get, {Value(request.idempotency_key)});
      if (!prior) return std::unexpected(prior.error());
      if (!prior->empty()) return prior->text_at(0, 0).value_or("");
      auto charge = tx.execute(k_charge_of, {Value(request.charge_reference)});
      if (!charge) return std::unexpected(charge.error());
      if (charge->empty()) return fail(Errc::invalid_argument, "no successful charge " + request.charge_reference);
      auto refunded = tx.execute(k_refunded, {Value(request.charge_reference)});
      if (!refunded) return std::unexpected(refunded.error());
      if (request.amount <= 0 ||
          request.amount > charge->int_at(0, 0).value_or(0) - refunded->int_at(0, 0).value_or(0)) {
        return fail(Errc::invalid_argument, "refund exceeds what is left of the charge");
      }
      const std::string reference = "re_sim_" + new_uuid_v7(clock_);
      const std::int64_t now =
          std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
      // payment_method holds the refunded charge's reference, so refunds are summed per charge.
      auto put = tx.execute(k_put, {Value(request.idempotency_key), Value(reference), Value(std::string("refund")),
                                    Value(request.charge_reference), Value(request.amount), Value(request.currency),
                                    Value(std::string("succeeded")), Value(now)});
      if (!put) return std::unexpected(put.error());
      return reference;
    });
  }

 private:
  Result<ChargeResult> charge_one(storage::Transaction& tx, const ChargeRequest& request, std::int64_t now) {
    const TestCard* card = find_card(request.payment_method);
    if (card == nullptr) {
      ChargeResult r;
      r.failure_code = "invalid_payment_method";
      r.decline = Decline::hard;
      r.message = "The payment method is not a simulated test card.";
      return r;
    }
    if (request.amount <= 0) return fail(Errc::invalid_argument, "charge amount must be positive");
    if (auto prior = replay(tx, request.idempotency_key); !prior || *prior) {
      if (!prior) return std::unexpected(prior.error());
      return **prior;
    }
    if (card->network_error) return fail(Errc::unavailable, "payment provider unreachable (simulated network error)");
    const std::string reference = "ch_sim_" + new_uuid_v7(clock_);
    auto put = tx.execute(k_put, {Value(request.idempotency_key), Value(reference), Value(std::string("charge")),
                                  Value(request.payment_method), Value(request.amount), Value(request.currency),
                                  Value(std::string(card->succeeds ? "succeeded" : "failed")), Value(now)});
    if (!put) return std::unexpected(put.error());
    if (put->affected_rows == 0) {
      // A concurrent call with the same key got there first: its outcome, no second charge.
      auto prior = replay(tx, request.idempotency_key);
      if (!prior) return std::unexpected(prior.error());
      if (*prior) return **prior;
      return fail(Errc::internal, "ledger lost a charge");
    }
    return result_for(*card, reference);
  }

  // The first outcome of a key already in the ledger.
  Result<std::optional<ChargeResult>> replay(storage::Transaction& tx, const std::string& key) {
    auto prior = tx.execute(k_get, {Value(key)});
    if (!prior) return std::unexpected(prior.error());
    if (prior->empty()) return std::optional<ChargeResult>();
    const TestCard* first = find_card(prior->text_at(0, 2).value_or(""));
    if (first == nullptr) return fail(Errc::internal, "ledger names an unknown card");
    return std::optional<ChargeResult>(result_for(*first, prior->text_at(0, 0).value_or("")));
  }

  storage::Database& db_;
  const Clock& clock_;
};

}  // namespace

std::string_view decline_name(Decline d) {
  switch (d) {
    case Decline::none: return "";
    case Decline::soft: return "soft";
    case Decline::hard: return "hard";
  }
  return "";
}

std::vector<Result<ChargeResult>> PaymentGateway::charge_many(std::span<const ChargeRequest> requests) {
  std::vector<Result<ChargeResult>> out;
  out.reserve(requests.size());
  for (const auto& r : requests) out.push_back(charge(r));
  return out;
}

std::unique_ptr<PaymentGateway> simulated_gateway(storage::Database& ledger, const Clock& clock) {
  return std::make_unique<SimulatedGateway>(ledger, clock);
}

std::span<const std::string_view> simulated_payment_methods() { return k_methods; }

}  // namespace atrium::billing
