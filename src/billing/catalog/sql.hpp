#pragma once

// The SQL of billing's catalog: plans, their price versions, coupons and tax rates (no tenant: the catalog is the
// platform's). Constant text with bind parameters; a TenantStatement binds the tenant as $1.

#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::billing {

using storage::Statement;
using tenancy::TenantStatement;

#define PLAN_COLS                                                                                                   \
  "p.id, p.code, p.name, p.tier, p.active, p.created_at, p.updated_at, v.version, v.currency, v.billing_interval, " \
  "v.base_price, v.included_seats, v.seat_price, v.trial_days, v.features, v.limits, v.metered_prices, v.dunning, " \
  "v.created_at, v.quotas"
constexpr Statement k_plan_get{"billing_plan_get",
                               "SELECT " PLAN_COLS
                               " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                               "COALESCE($2, p.current_version) WHERE p.id = $1 OR p.code = $1"};
constexpr Statement k_plan_get_locked{"billing_plan_get_locked",
                                      "SELECT " PLAN_COLS
                                      " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                                      "p.current_version WHERE p.id = $1 OR p.code = $1 FOR UPDATE OF p"};
constexpr Statement k_plan_list{"billing_plan_list",
                                "SELECT " PLAN_COLS
                                " FROM plans p JOIN plan_versions v ON v.plan_id = p.id AND v.version = "
                                "p.current_version WHERE p.active OR $1 ORDER BY p.created_at, p.id"};
constexpr Statement k_plan_all_versions{"billing_plan_all_versions",
                                        "SELECT " PLAN_COLS " FROM plans p JOIN plan_versions v ON v.plan_id = p.id"};
constexpr Statement k_plan_insert{"billing_plan_insert",
                                  "INSERT INTO plans (id, code, name, tier, active, current_version, created_at, "
                                  "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"};
constexpr Statement k_plan_update{"billing_plan_update",
                                  "UPDATE plans SET name = $2, tier = $3, active = $4, current_version = $5, "
                                  "updated_at = $6 WHERE id = $1"};
constexpr Statement k_plan_version_insert{
    "billing_plan_version_insert",
    "INSERT INTO plan_versions (plan_id, version, currency, billing_interval, base_price, included_seats, "
    "seat_price, trial_days, features, limits, metered_prices, dunning, created_at, quotas) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"};

#define COUPON_COLS                                                                                     \
  "id, code, name, percent_off_bps, amount_off, currency, duration, duration_months, max_redemptions, " \
  "times_redeemed, redeem_by, active, created_at"
constexpr Statement k_coupon_insert{"billing_coupon_insert",
                                    "INSERT INTO coupons (" COUPON_COLS
                                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12)"};
constexpr Statement k_coupon_get{"billing_coupon_get",
                                 "SELECT " COUPON_COLS " FROM coupons WHERE id = $1 OR code = $1"};
constexpr Statement k_coupon_list{"billing_coupon_list", "SELECT " COUPON_COLS " FROM coupons ORDER BY created_at, id"};
constexpr Statement k_coupon_redeem{"billing_coupon_redeem",
                                    "UPDATE coupons SET times_redeemed = times_redeemed + 1 WHERE id = $1 AND active "
                                    "AND (max_redemptions IS NULL OR times_redeemed < max_redemptions)"};
constexpr Statement k_coupon_deactivate{"billing_coupon_deactivate", "UPDATE coupons SET active = $2 WHERE id = $1"};

#define TAX_COLS "id, country, region, name, bps, inclusive, created_at"
constexpr Statement k_tax_upsert{"billing_tax_upsert",
                                 "INSERT INTO tax_rates (" TAX_COLS
                                 ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (country, region) DO UPDATE SET "
                                 "name = excluded.name, bps = excluded.bps, inclusive = excluded.inclusive"};
constexpr Statement k_tax_get{"billing_tax_get",
                              "SELECT " TAX_COLS " FROM tax_rates WHERE country = $1 AND region = $2"};
constexpr Statement k_tax_list{"billing_tax_list", "SELECT " TAX_COLS " FROM tax_rates ORDER BY country, region"};

// A tenant archive carries the catalog rows its subscriptions name, as stored (Billing::catalog_rows).
constexpr Statement k_archive_plan{"billing_archive_plan",
                                   "SELECT id, code, name, tier, active, current_version, created_at, updated_at FROM "
                                   "plans WHERE id = $1"};
constexpr Statement k_archive_plan_versions{
    "billing_archive_plan_versions",
    "SELECT plan_id, version, currency, billing_interval, base_price, included_seats, seat_price, trial_days, "
    "features, limits, metered_prices, dunning, created_at, quotas FROM plan_versions WHERE plan_id = $1 ORDER BY "
    "version"};
constexpr Statement k_archive_coupon{"billing_archive_coupon",
                                     "SELECT id, code, name, percent_off_bps, amount_off, currency, duration, "
                                     "duration_months, max_redemptions, times_redeemed, redeem_by, active, created_at "
                                     "FROM coupons WHERE id = $1"};
constexpr Statement k_restore_plan{"billing_restore_plan",
                                   "INSERT INTO plans (id, code, name, tier, active, current_version, created_at, "
                                   "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"};
constexpr Statement k_restore_plan_version{
    "billing_restore_plan_version",
    "INSERT INTO plan_versions (plan_id, version, currency, billing_interval, base_price, included_seats, "
    "seat_price, trial_days, features, limits, metered_prices, dunning, created_at, quotas) VALUES ($1, $2, $3, $4, "
    "$5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"};
constexpr Statement k_restore_coupon{"billing_restore_coupon",
                                     "INSERT INTO coupons (id, code, name, percent_off_bps, amount_off, currency, "
                                     "duration, duration_months, max_redemptions, times_redeemed, redeem_by, active, "
                                     "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"};

}  // namespace atrium::billing
