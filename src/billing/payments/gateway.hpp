#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/database.hpp"

namespace atrium::billing {

// How a declined charge may be retried: soft declines (insufficient funds, a generic decline) and network errors
// are retried by dunning; hard declines (lost, stolen or expired card) are not.
enum class Decline { none, soft, hard };
std::string_view decline_name(Decline d);

struct ChargeRequest {
  std::string idempotency_key;  // the same key never charges twice
  std::string payment_method;
  std::int64_t amount = 0;  // minor units, > 0
  std::string currency;
  std::string description;
};

struct ChargeResult {
  bool succeeded = false;
  std::string reference;     // the provider's id of the charge (also for a decline)
  std::string failure_code;  // "card_declined", "insufficient_funds", "lost_card", "expired_card", ...
  Decline decline = Decline::none;
  std::string message;
};

struct RefundRequest {
  std::string idempotency_key;
  std::string charge_reference;
  std::int64_t amount = 0;
  std::string currency;
};

// A payment provider (Stripe, Adyen, ...). Every call carries an idempotency key: a call repeated with the same
// key returns the first call's result and moves no money again, which is what makes a crashed billing run safe to
// run again. An Error result means the outcome is unknown (network, provider down): the caller retries later with
// the same key. Implementations are thread-safe.
class PaymentGateway {
 public:
  virtual ~PaymentGateway() = default;
  virtual std::string_view name() const = 0;
  // Whether this provider accepts `payment_method` (checked when a billing account stores it).
  virtual bool accepts(std::string_view payment_method) const = 0;
  virtual Result<ChargeResult> charge(const ChargeRequest& request) = 0;
  // Several charges; providers that batch override it. The default charges one by one.
  virtual std::vector<Result<ChargeResult>> charge_many(std::span<const ChargeRequest> requests);
  // Returns the refund's reference.
  virtual Result<std::string> refund(const RefundRequest& request) = 0;
};

// A provider for tests and demos whose outcome depends on the payment method, like Stripe's test cards:
//   pm_card_visa, pm_card_mastercard               succeed
//   pm_card_chargeDeclined                         soft decline "card_declined"
//   pm_card_chargeDeclinedInsufficientFunds        soft decline "insufficient_funds"
//   pm_card_chargeDeclinedLostCard                 hard decline "lost_card"
//   pm_card_chargeDeclinedExpiredCard              hard decline "expired_card"
//   pm_card_networkError                           the call fails (unavailable): outcome unknown, nothing recorded
// It keeps its ledger (every charge and refund, keyed by idempotency key) in the table simulated_charges of
// `ledger`, like a real provider, so a repeated key answers from there even after a restart.
std::unique_ptr<PaymentGateway> simulated_gateway(storage::Database& ledger, const Clock& clock);
// The payment methods above, for validation messages and docs.
std::span<const std::string_view> simulated_payment_methods();

}  // namespace atrium::billing
