// The billing routes' JSON bodies decoded into billing's typed commands (api/billing_input.hpp): what each member
// becomes, and what is refused before billing is asked anything.
#include <gtest/gtest.h>

#include "api/billing_input.hpp"

namespace atrium::api {
namespace {

namespace in = billing_input;

template <class T>
std::string refusal(const Result<T>& r) {
  EXPECT_FALSE(r);
  if (r) return "";
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  return r.error().message;
}

TEST(BillingInputTest, ANewPlanCarriesEveryPriceField) {
  auto p = in::new_plan({{"code", "pro"},
                         {"name", "Pro"},
                         {"tier", "professional"},
                         {"active", false},
                         {"currency", "EUR"},
                         {"interval", "quarterly"},
                         {"base_price", 4900},
                         {"included_seats", 3},
                         {"seat_price", 900},
                         {"trial_days", 14},
                         {"features", {{"apiCalls", 1000}}},
                         {"limits", {{"projects", 5}}},
                         {"metered_prices", {{{"metric", "calls"}, {"model", "per_unit"}, {"unit_amount", 2}}}},
                         {"quotas", {{"calls", {{"metric", "calls"}, {"limit", 10}, {"enforcement", "hard"}}}}},
                         {"dunning", {{"retry_schedule_hours", {24, 48}}, {"final_action", "unpaid"}}}});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->code, "pro");
  EXPECT_EQ(p->name, "Pro");
  EXPECT_EQ(p->tier, "professional");
  EXPECT_EQ(p->active, false);
  EXPECT_EQ(p->price.currency, "EUR");
  EXPECT_EQ(p->price.interval, billing::Interval::quarterly);
  EXPECT_EQ(p->price.base_price, 4900);
  EXPECT_EQ(p->price.included_seats, 3);
  EXPECT_EQ(p->price.seat_price, 900);
  EXPECT_EQ(p->price.trial_days, 14);
  EXPECT_EQ(p->price.features, (Json{{"apiCalls", 1000}}));
  EXPECT_EQ(p->price.limits, (Json{{"projects", 5}}));
  ASSERT_TRUE(p->price.metered);
  ASSERT_EQ(p->price.metered->size(), 1u);
  EXPECT_EQ(p->price.metered->front().metric, "calls");
  EXPECT_EQ(p->price.metered->front().unit_amount, 2);
  ASSERT_TRUE(p->price.quotas);
  ASSERT_EQ(p->price.quotas->size(), 1u);
  EXPECT_EQ(p->price.quotas->front().limit, 10);
  EXPECT_EQ(p->price.quotas->front().enforcement, billing::Enforcement::hard);
  ASSERT_TRUE(p->price.dunning);
  EXPECT_EQ(p->price.dunning->retry_hours, (std::vector<std::int64_t>{24, 48}));
  EXPECT_EQ(p->price.dunning->final_action, billing::FinalAction::unpaid);
}

TEST(BillingInputTest, AnUpdateLeavesWhatItDoesNotNameUnset) {
  auto u = in::plan_update({{"name", "Renamed"}});
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->name, "Renamed");
  EXPECT_FALSE(u->tier);
  EXPECT_FALSE(u->active);
  EXPECT_FALSE(u->price.currency);
  EXPECT_FALSE(u->price.base_price);
  EXPECT_FALSE(u->price.dunning);
  EXPECT_EQ(refusal(in::plan_update({{"code", "other"}})), "code cannot change");
}

TEST(BillingInputTest, UnknownMembersAndWrongTypesAreRefusedNamingTheMember) {
  EXPECT_EQ(refusal(in::new_plan({{"code", "x"}, {"colour", "red"}})), "unknown member 'colour'");
  EXPECT_EQ(refusal(in::new_subscription({{"plan", "x"}, {"seats", "3"}})), "seats must be an integer");
  EXPECT_EQ(refusal(in::new_subscription({{"plan", "x"}, {"seats", 18446744073709551615ULL}})),
            "seats is out of range");
  EXPECT_EQ(refusal(in::new_subscription(Json::object())), "plan (a plan's code or id) is required");
  EXPECT_EQ(refusal(in::new_subscription(Json::array())), "the body must be a JSON object");
  EXPECT_EQ(refusal(in::cancellation({{"at_period_end", "yes"}})), "at_period_end must be true or false");
  EXPECT_EQ(refusal(in::account_update({{"address", {"a", 1}}})), "address entries must be strings of up to 200 bytes");
  EXPECT_EQ(refusal(in::account_update({{"email", std::string(255, 'a')}})), "email is longer than 254");
  EXPECT_EQ(refusal(in::new_coupon({{"code", "X"}, {"redeem_by", "tomorrow"}})),
            "redeem_by must be an RFC 3339 date-time");
  EXPECT_EQ(refusal(in::new_plan({{"interval", "weekly"}})), "interval must be monthly, quarterly or annual");
  EXPECT_NE(refusal(in::new_plan({{"dunning", {{"final_action", "forgive"}}}})).find("final_action"),
            std::string::npos);
}

TEST(BillingInputTest, NullMembersAreNotGiven) {
  auto s = in::new_subscription({{"plan", "x"}, {"seats", nullptr}, {"coupon", nullptr}});
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_FALSE(s->seats);
  EXPECT_FALSE(s->coupon);
}

TEST(BillingInputTest, ManualInvoiceLinesDefaultToOneAndNeedAnAmount) {
  auto inv = in::manual_invoice({{"memo", "setup"},
                                 {"lines",
                                  {{{"description", "Setup"}, {"unit_amount", 5000}},
                                   {{"description", "Discount"}, {"quantity", 2}, {"unit_amount", -100}}}}});
  ASSERT_TRUE(inv) << inv.error().message;
  EXPECT_EQ(inv->memo, "setup");
  ASSERT_EQ(inv->lines.size(), 2u);
  EXPECT_EQ(inv->lines[0].quantity, 1);
  EXPECT_EQ(inv->lines[0].unit_amount, 5000);
  EXPECT_EQ(inv->lines[1].quantity, 2);
  EXPECT_EQ(inv->lines[1].unit_amount, -100);
  EXPECT_EQ(refusal(in::manual_invoice({{"lines", {{{"description", "x"}}}}})),
            "lines[].unit_amount is required (minor units)");
  EXPECT_EQ(refusal(in::manual_invoice({{"lines", Json::array()}})), "lines must be an array of 1-500 lines");
  EXPECT_EQ(refusal(in::manual_invoice({{"lines", {{{"description", "x"}, {"unit_amount", 1}, {"tax", 1}}}}})),
            "unknown member 'tax'");
}

TEST(BillingInputTest, TimesBecomeWholeSeconds) {
  auto c = in::new_test_clock({{"name", "c"}, {"frozen_time", "2026-03-01T00:00:00.999Z"}});
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->frozen_time, from_unix_seconds(1772323200));  // the fraction dropped: billing counts seconds
  auto coupon = in::new_coupon({{"code", "X"}, {"redeem_by", "2026-03-01T01:00:00+01:00"}});
  ASSERT_TRUE(coupon) << coupon.error().message;
  EXPECT_EQ(coupon->redeem_by, from_unix_seconds(1772323200));
}

TEST(BillingInputTest, CreditNotesAndTaxRatesDecode) {
  auto n = in::new_credit_note({{"invoice_id", "inv"}, {"amount", 250}, {"method", "refund"}, {"reason", "duplicate"}});
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(n->invoice_id, "inv");
  EXPECT_EQ(n->amount, 250);
  EXPECT_EQ(n->method, "refund");
  EXPECT_EQ(n->reason, "duplicate");
  EXPECT_EQ(refusal(in::new_credit_note({{"invoice_id", "inv"}})), "amount (minor units, > 0) is required");
  auto t = in::tax_rate({{"country", "DE"}, {"bps", 1900}, {"inclusive", true}});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->country, "DE");
  EXPECT_EQ(t->bps, 1900);
  EXPECT_EQ(t->inclusive, true);
  EXPECT_FALSE(t->region);
  EXPECT_EQ(refusal(in::tax_rate({{"country", "DEU"}})), "country is longer than 2");
}

}  // namespace
}  // namespace atrium::api
