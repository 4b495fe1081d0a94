// atrium_billing_bench: the billing run over N active subscriptions (invoices per second), beside a named baseline
// measured in the same run, on the same database.
//
// Usage: atrium_billing_bench --backend sqlite|postgres --subscriptions N [--url URL] [--batch B]
//   sqlite    a fresh data directory in a temporary directory ($TMPDIR or /tmp), removed at exit; no URL
//   postgres  --url names a database on the server to connect to as a superuser (default
//             $ATRIUM_TEST_POSTGRES_URL); the bench creates two roles atrium_bench_<random>_owner and _app (LOGIN,
//             no password, NOSUPERUSER NOBYPASSRLS: the server must let them in, as scripts/services.sh's trust
//             authentication does) and a fresh database owned by the first; the platform migrates as the owner
//             and serves as the app role, so row-level security applies as in production. The database and the
//             roles are dropped at exit.
//   --batch   subscriptions per billing-run transaction (billing.run_batch) and baseline sets per transaction;
//             default 500 (the configuration's default)
//
// Setup (not measured): app::Platform::open (migrations, no background services) on a ManualClock standing at
// T0 = 2026-01-01T00:00:00Z, so the platform's Billing and its simulated payment gateway read that clock; one
// monthly USD plan (29.00, one included seat) through Billing::create_plan; then N tenants (shared isolation), N
// billing accounts (pm_card_visa, USD, no country: no tax rate lookup hit) and N active subscriptions (anchor T0,
// cycle 1, period [T0, 2026-02-01)) written with plain INSERTs, 2,000 tenants per transaction.
//
// Measurements:
//   billing run  the clock moves to 2026-02-02, then Billing::run() is timed: N renewals, each an invoice (number,
//                line, invoice.finalized event), a payment attempt and the subscription moved on, in transactions
//                of B subscriptions; each batch charged through the simulated gateway (its ledger, one transaction
//                per batch) and the outcomes recorded (attempt, invoice paid, invoice.paid and payment.succeeded
//                events; one transaction per batch) -> invoices/s. Checked: RunStats.invoices == N and
//                charged == N; then COUNT(*) of invoices == N, payment_attempts 'succeeded' == N,
//                simulated_charges == N.
//   baseline     "baseline: the rows a renewal writes, no logic": N sets, in transactions of B sets, of the plain
//                single-row statements one renewal leaves behind, in the same platform scope as the run
//                (TenantData::transact_platform; PostgreSQL: the owner role's pool): INSERT the invoice in its final
//                state (distinct number and cycle_key), INSERT one invoice_lines row, INSERT one payment_attempts
//                row (succeeded), INSERT one simulated_charges row, INSERT three pending_events rows, UPDATE the
//                subscription's period -> sets/s. The ids are UUIDv7 as in the run; the JSON texts (customer,
//                event payloads) are constants of the run's sizes, made once.
//
// Output: one TSV line per measurement on stdout (no header; bench/billing.sh prints one):
//   backend  measure  subscriptions  batch  seconds  per_second
// Progress and errors go to stderr. Exit status 0 when both measurements ran and checked out, 1 on a failure
// (cleanup still runs), 2 on a usage error. A process killed by a signal leaves its temporary directory, its
// PostgreSQL database and roles behind (bench/billing.sh runs it against a private server in a directory it
// removes).
#include <signal.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "app/platform.hpp"
#include "billing/billing.hpp"
#include "billing/calendar.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/error.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "scratch.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace {

using atrium::Errc;
using atrium::fail;
using atrium::Json;
using atrium::Result;
using atrium::bench::note;
using atrium::bench::pg_admin;
using atrium::bench::PgScratch;
using atrium::bench::random_hex;
using atrium::bench::TempDir;
using atrium::billing::Instant;
using atrium::storage::Database;
using atrium::storage::Statement;
using atrium::storage::Transaction;
using atrium::storage::Value;
using Steady = std::chrono::steady_clock;

constexpr Instant k_t0{std::chrono::seconds(1'767'225'600)};  // 2026-01-01T00:00:00Z
constexpr Instant k_run_at = k_t0 + std::chrono::days(32);    // 2026-02-02T00:00:00Z: past the first period's end
constexpr std::int64_t k_price = 2900;                        // the plan's base price, minor units
constexpr std::int64_t k_seed_per_transaction = 2000;
const std::string k_payment_method = "pm_card_visa";
const std::string k_currency = "USD";

struct Options {
  std::string backend;
  std::int64_t subscriptions = 0;
  std::string url;
  int batch = 500;
};

double seconds_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void print_row(const Options& o, const std::string& measure, double seconds) {
  const double per_second = seconds > 0 ? static_cast<double>(o.subscriptions) / seconds : 0;
  std::printf("%s\t%s\t%lld\t%d\t%.3f\t%.1f\n", o.backend.c_str(), measure.c_str(),
              static_cast<long long>(o.subscriptions), o.batch, seconds, per_second);
  std::fflush(stdout);
}

// ---- statements ------------------------------------------------------------------------------------------------

constexpr Statement k_seed_tenant{"bench_billing_seed_tenant",
                                  "INSERT INTO tenants (id, slug, name, status, isolation, plan, quotas, created_at, "
                                  "updated_at) VALUES ($1, $2, $3, 'active', 'shared', 'starter', '{}', $4, $4)"};
constexpr Statement k_seed_account{
    "bench_billing_seed_account",
    "INSERT INTO billing_accounts (tenant_id, legal_name, email, address, country, region, currency, tax_ids, "
    "payment_method, credit_balance, proration, test_mode, created_at, updated_at) VALUES ($1, $2, $3, '[]', '', '', "
    "$4, '[]', $5, 0, 'daily', $6, $7, $7)"};
constexpr Statement k_seed_subscription{
    "bench_billing_seed_subscription",
    "INSERT INTO subscriptions (tenant_id, id, plan_id, plan_version, status, seats, anchor, cycle, "
    "current_period_start, current_period_end, trial_end, cancel_at_period_end, cancelled_at, paused_at, coupon_id, "
    "coupon_start, coupon_uses, test_clock_id, created_at, updated_at) VALUES ($1, $2, $3, 1, 'active', 1, $4, 1, $4, "
    "$5, NULL, $6, NULL, NULL, NULL, NULL, 0, NULL, $4, $4)"};

constexpr Statement k_count_invoices{"bench_billing_count_invoices", "SELECT COUNT(*) FROM invoices"};
constexpr Statement k_count_succeeded{"bench_billing_count_succeeded",
                                      "SELECT COUNT(*) FROM payment_attempts WHERE status = 'succeeded'"};
constexpr Statement k_count_charges{"bench_billing_count_charges", "SELECT COUNT(*) FROM simulated_charges"};

// The baseline's rows: the same tables and columns a renewal writes, each value bound as the run binds it.
constexpr Statement k_base_invoice{
    "bench_billing_base_invoice",
    "INSERT INTO invoices (tenant_id, id, number, subscription_id, cycle_key, status, billing_reason, currency, "
    "period_start, period_end, subtotal, discount, discount_label, tax, tax_inclusive, tax_label, total, "
    "credit_applied, credit_created, amount_due, amount_paid, amount_remaining, attempt_count, next_payment_attempt, "
    "customer, memo, test_clock_id, created_at, finalized_at, paid_at, voided_at, updated_at) VALUES ($1, $2, $3, "
    "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, "
    "$27, $28, $29, $30, $31, $28)"};
constexpr Statement k_base_line{
    "bench_billing_base_line",
    "INSERT INTO invoice_lines (tenant_id, invoice_id, line_no, kind, description, quantity, unit_amount, amount, "
    "period_start, period_end, proration) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"};
constexpr Statement k_base_attempt{
    "bench_billing_base_attempt",
    "INSERT INTO payment_attempts (tenant_id, id, invoice_id, attempt, idempotency_key, amount, currency, "
    "payment_method, status, failure_code, decline, message, reference, created_at, completed_at) VALUES ($1, $2, $3, "
    "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"};
constexpr Statement k_base_charge{"bench_billing_base_charge",
                                  "INSERT INTO simulated_charges (idempotency_key, reference, kind, payment_method, "
                                  "amount, currency, outcome, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"};
constexpr Statement k_base_event{"bench_billing_base_event",
                                 "INSERT INTO pending_events (id, tenant_id, type, data, created_at) VALUES ($1, $2, "
                                 "$3, $4, $5) ON CONFLICT DO NOTHING"};
constexpr Statement k_base_subscription{"bench_billing_base_subscription",
                                        "UPDATE subscriptions SET cycle = $3, current_period_start = $4, "
                                        "current_period_end = $5, updated_at = $6 WHERE tenant_id = $1 AND id = $2"};

// ---- helpers ---------------------------------------------------------------------------------------------------

// A transaction in the platform scope (PostgreSQL: the owner role's connection, whose policies let it see every
// tenant's billing rows).
Result<void> platform_tx(atrium::app::Platform& platform, const std::function<Result<void>(Transaction&)>& body,
                         atrium::storage::TransactionOptions options = {}) {
  return platform.tenant_data->transact_platform(
      [&](atrium::tenancy::PlatformTransaction& tx) -> Result<void> { return body(tx.control()); }, options);
}

Result<void> exec(Transaction& tx, const Statement& s, std::initializer_list<Value> params) {
  auto r = tx.execute(s, params);
  if (!r) return fail(r.error().code, std::string(s.name) + ": " + r.error().message);
  return {};
}

Result<std::int64_t> count(atrium::app::Platform& platform, const Statement& s) {
  std::int64_t n = -1;
  auto r = platform_tx(platform,
                       [&](Transaction& tx) -> Result<void> {
                         auto rs = tx.execute(s);
                         if (!rs) return std::unexpected(rs.error());
                         n = rs->int_at(0, 0).value_or(-1);
                         return {};
                       },
                       {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return n;
}

std::string zero_padded(std::int64_t n, int width) {
  std::string digits = std::to_string(n);
  if (static_cast<int>(digits.size()) < width) digits.insert(0, static_cast<std::size_t>(width) - digits.size(), '0');
  return digits;
}

// ---- setup -----------------------------------------------------------------------------------------------------

struct Seeded {
  std::string plan_id;
  std::vector<std::string> tenant_ids;
  std::vector<std::string> subscription_ids;
};

Result<Seeded> seed(atrium::app::Platform& platform, const atrium::Clock& clock, const Options& o) {
  Seeded out;
  auto plan = platform.billing->create_plan(
      {.code = "bench-monthly",
       .name = "Bench monthly",
       .tier = "starter",
       .price = {.currency = k_currency, .interval = atrium::billing::Interval::monthly, .base_price = k_price}},
      {});
  if (!plan) return fail(plan.error().code, "create_plan: " + plan.error().message);
  out.plan_id = plan->id;
  const Instant period_end = atrium::billing::boundary(k_t0, atrium::billing::Interval::monthly, 1);
  const std::string created = atrium::format_rfc3339(clock.now());
  const auto n = static_cast<std::size_t>(o.subscriptions);
  out.tenant_ids.reserve(n);
  out.subscription_ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.tenant_ids.push_back(atrium::new_uuid_v7(clock));
    out.subscription_ids.push_back(atrium::new_uuid_v7(clock));
  }
  for (std::size_t begin = 0; begin < n; begin += k_seed_per_transaction) {
    const std::size_t end = std::min(n, begin + k_seed_per_transaction);
    auto r = platform_tx(platform, [&](Transaction& tx) -> Result<void> {
      for (std::size_t i = begin; i < end; ++i) {
        const std::string num = zero_padded(static_cast<std::int64_t>(i + 1), 6);
        const std::string& tenant = out.tenant_ids[i];
        if (auto r = exec(tx, k_seed_tenant,
                          {Value(tenant), Value("bench-" + num), Value("Bench tenant " + num), Value(created)});
            !r) {
          return r;
        }
        if (auto r =
                exec(tx, k_seed_account,
                     {Value(tenant), Value("Bench Tenant " + num + " Ltd"), Value("billing@bench-" + num + ".example"),
                      Value(k_currency), Value(k_payment_method), Value(false), Value(atrium::unix_seconds(k_t0))});
            !r) {
          return r;
        }
        if (auto r = exec(tx, k_seed_subscription,
                          {Value(tenant), Value(out.subscription_ids[i]), Value(out.plan_id),
                           Value(atrium::unix_seconds(k_t0)), Value(atrium::unix_seconds(period_end)), Value(false)});
            !r) {
          return r;
        }
      }
      return {};
    });
    if (!r) return fail(r.error().code, "seeding: " + r.error().message);
  }
  return out;
}

// ---- measurements ----------------------------------------------------------------------------------------------

Result<double> measure_run(atrium::app::Platform& platform, const Options& o) {
  const auto begin = Steady::now();
  auto stats = platform.billing->run();
  const auto end = Steady::now();
  if (!stats) return fail(stats.error().code, "Billing::run: " + stats.error().message);
  note("run stats: renewed " + std::to_string(stats->renewed) + ", invoices " + std::to_string(stats->invoices) +
       ", charged " + std::to_string(stats->charged) + ", failed " + std::to_string(stats->failed) + ", retried " +
       std::to_string(stats->retried) + ", cancelled " + std::to_string(stats->cancelled));
  const std::int64_t n = o.subscriptions;
  if (stats->invoices != n || stats->charged != n) {
    return fail(Errc::internal, "the run made " + std::to_string(stats->invoices) + " invoices and " +
                                    std::to_string(stats->charged) + " charges, expected " + std::to_string(n));
  }
  struct Check {
    const Statement& statement;
    const char* what;
  };
  for (const Check& c : {Check{k_count_invoices, "invoices"}, Check{k_count_succeeded, "succeeded payment attempts"},
                         Check{k_count_charges, "simulated charges"}}) {
    auto got = count(platform, c.statement);
    if (!got) return fail(got.error().code, std::string("counting ") + c.what + ": " + got.error().message);
    if (*got != n) {
      return fail(Errc::internal,
                  "the database holds " + std::to_string(*got) + " " + c.what + ", expected " + std::to_string(n));
    }
  }
  return seconds_between(begin, end);
}

Result<double> measure_baseline(atrium::app::Platform& platform, const atrium::Clock& clock, const Seeded& seeded,
                                const Options& o) {
  // The run's period: [2026-02-01, 2026-03-01); the baseline moves each subscription on to the next one.
  const Instant start = atrium::billing::boundary(k_t0, atrium::billing::Interval::monthly, 2);
  const Instant end = atrium::billing::boundary(k_t0, atrium::billing::Interval::monthly, 3);
  const Instant now = k_run_at;
  // JSON texts of the sizes the run stores (made once; the run builds them per invoice).
  const std::string sample_id = atrium::new_uuid_v7(clock);
  const std::string customer = Json{
      {"legal_name", "Bench Tenant 000001 Ltd"},
      {"email", "billing@bench-000001.example"},
      {"address", Json::array()},
      {"country", ""},
      {"region", ""},
      {"tax_ids", Json::array()}}.dump();
  const std::string number_sample = "INV-202602-000001";
  const std::string finalized =
      Json{{"invoice_id", sample_id}, {"number", number_sample}, {"total", k_price},
           {"amount_due", k_price},   {"currency", k_currency},  {"billing_reason", "subscription_cycle"}}
          .dump();
  const std::string paid = Json{{"invoice_id", sample_id}, {"number", number_sample}}.dump();
  const std::string succeeded = Json{
      {"invoice_id", sample_id},
      {"number", number_sample},
      {"amount", k_price},
      {"currency", k_currency},
      {"attempt", 1},
      {"payment_method", k_payment_method},
      {"reference",
       "ch_sim_" + sample_id}}.dump();
  const std::array<std::pair<std::string, const std::string*>, 3> events{
      {{"invoice.finalized", &finalized}, {"invoice.paid", &paid}, {"payment.succeeded", &succeeded}}};
  const std::string description = "Bench monthly (monthly)";
  const auto n = static_cast<std::size_t>(o.subscriptions);
  const auto batch = static_cast<std::size_t>(o.batch);

  const auto begin = Steady::now();
  for (std::size_t first = 0; first < n; first += batch) {
    const std::size_t last = std::min(n, first + batch);
    auto r = platform_tx(platform, [&](Transaction& tx) -> Result<void> {
      for (std::size_t i = first; i < last; ++i) {
        const std::string& tenant = seeded.tenant_ids[i];
        const std::string& sub = seeded.subscription_ids[i];
        const std::string invoice = atrium::new_uuid_v7(clock);
        const std::string key = "invoice:" + invoice + ":1";
        const std::string reference = "ch_sim_" + atrium::new_uuid_v7(clock);
        if (auto r = exec(tx, k_base_invoice,
                          {Value(tenant),
                           Value(invoice),
                           Value("BL-202602-" + zero_padded(static_cast<std::int64_t>(i + 1), 6)),
                           Value(sub),
                           Value(sub + ":" + std::to_string(atrium::unix_seconds(start)) + ":baseline"),
                           Value(std::string("paid")),
                           Value(std::string("subscription_cycle")),
                           Value(k_currency),
                           Value(atrium::unix_seconds(start)),
                           Value(atrium::unix_seconds(end)),
                           Value(k_price),
                           Value(std::int64_t{0}),
                           Value(std::string()),
                           Value(std::int64_t{0}),
                           Value(false),
                           Value(std::string()),
                           Value(k_price),
                           Value(std::int64_t{0}),
                           Value(std::int64_t{0}),
                           Value(k_price),
                           Value(k_price),
                           Value(std::int64_t{0}),
                           Value(std::int64_t{1}),
                           Value(),
                           Value(customer),
                           Value(std::string()),
                           Value(),
                           Value(atrium::unix_seconds(now)),
                           Value(atrium::unix_seconds(now)),
                           Value(atrium::unix_seconds(now)),
                           Value()});
            !r) {
          return r;
        }
        if (auto r = exec(tx, k_base_line,
                          {Value(tenant), Value(invoice), Value(std::int64_t{1}), Value(std::string("subscription")),
                           Value(description), Value(std::int64_t{1}), Value(k_price), Value(k_price),
                           Value(atrium::unix_seconds(start)), Value(atrium::unix_seconds(end)), Value(false)});
            !r) {
          return r;
        }
        if (auto r =
                exec(tx, k_base_attempt,
                     {Value(tenant), Value(atrium::new_uuid_v7(clock)), Value(invoice), Value(std::int64_t{1}),
                      Value(key), Value(k_price), Value(k_currency), Value(k_payment_method),
                      Value(std::string("succeeded")), Value(std::string()), Value(std::string()), Value(std::string()),
                      Value(reference), Value(atrium::unix_seconds(now)), Value(atrium::unix_seconds(now))});
            !r) {
          return r;
        }
        if (auto r = exec(
                tx, k_base_charge,
                {Value(key), Value(reference), Value(std::string("charge")), Value(k_payment_method), Value(k_price),
                 Value(k_currency), Value(std::string("succeeded")), Value(atrium::unix_seconds(now))});
            !r) {
          return r;
        }
        for (const auto& [type, data] : events) {
          if (auto r = exec(tx, k_base_event,
                            {Value(atrium::new_uuid_v7(clock)), Value(tenant), Value(type), Value(*data),
                             Value(atrium::unix_seconds(now))});
              !r) {
            return r;
          }
        }
        if (auto r = exec(tx, k_base_subscription,
                          {Value(tenant), Value(sub), Value(std::int64_t{3}), Value(atrium::unix_seconds(start)),
                           Value(atrium::unix_seconds(end)), Value(atrium::unix_seconds(now))});
            !r) {
          return r;
        }
      }
      return {};
    });
    if (!r) return fail(r.error().code, "baseline: " + r.error().message);
  }
  return seconds_between(begin, Steady::now());
}

// ---- per backend -----------------------------------------------------------------------------------------------

int run(const Options& o, atrium::Config config) {
  atrium::ManualClock clock{k_t0};
  config.billing.run_batch = o.batch;
  config.billing.run_cron = "";
  config.identity.password_cost = "minimum";
  config.log.access_log = false;
  auto opened = atrium::app::Platform::open(config, clock, {.migrate = true, .background = false});
  if (!opened) {
    note("Platform::open: " + opened.error().message);
    return 1;
  }
  atrium::app::Platform& platform = **opened;

  note(o.backend + ": seeding " + std::to_string(o.subscriptions) + " tenants, billing accounts and subscriptions");
  const auto seed_begin = Steady::now();
  auto seeded = seed(platform, clock, o);
  if (!seeded) {
    note(seeded.error().message);
    return 1;
  }
  note(o.backend + ": seeded in " + std::to_string(seconds_between(seed_begin, Steady::now())) + " s");

  clock.advance(k_run_at - k_t0);
  note(o.backend + ": billing run (batch " + std::to_string(o.batch) + ")");
  int status = 0;
  std::optional<double> run_seconds;
  if (auto s = measure_run(platform, o); s) {
    run_seconds = *s;
    print_row(o, "billing run", *s);
  } else {
    note("billing run failed: " + s.error().message);
    status = 1;
  }

  note(o.backend + ": baseline (the rows a renewal writes, no logic)");
  if (auto s = measure_baseline(platform, clock, *seeded, o); s) {
    print_row(o, "baseline: the rows a renewal writes, no logic", *s);
    if (run_seconds) note(o.backend + ": billing run / baseline = " + std::to_string(*s / *run_seconds));
  } else {
    note("baseline failed: " + s.error().message);
    status = 1;
  }
  return status;
}

int run_sqlite(const Options& o) {
  auto dir = TempDir::create("atrium-billing-bench");
  if (!dir) {
    note(dir.error().message);
    return 1;
  }
  atrium::Config config;
  config.storage.data_dir = (*dir)->path() + "/data";
  return run(o, config);
}

// Two roles for the scratch database, dropped (after it) in the destructor.
class PgRoles {
 public:
  PgRoles(std::string server_url, std::string owner, std::string app)
      : server_url_(std::move(server_url)), owner_(std::move(owner)), app_(std::move(app)) {}
  PgRoles(const PgRoles&) = delete;
  PgRoles& operator=(const PgRoles&) = delete;
  Result<void> create() {
    for (const auto* role : {&owner_, &app_}) {
      if (auto r = pg_admin(server_url_, "CREATE ROLE " + *role + " LOGIN NOSUPERUSER NOBYPASSRLS"); !r) return r;
      created_.push_back(*role);
    }
    return {};
  }
  ~PgRoles() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
      if (auto r = pg_admin(server_url_, "DROP ROLE IF EXISTS " + *it); !r) {
        note("could not drop role " + *it + ": " + r.error().message);
      }
    }
  }

 private:
  std::string server_url_;
  std::string owner_;
  std::string app_;
  std::vector<std::string> created_;
};

int run_postgres(const Options& o) {
  auto dir = TempDir::create("atrium-billing-bench");  // the platform's key file
  if (!dir) {
    note(dir.error().message);
    return 1;
  }
  const std::string tag = random_hex(12);  // [a-z0-9_]: safe unquoted
  const std::string owner = "atrium_bench_" + tag + "_owner";
  const std::string app = "atrium_bench_" + tag + "_app";
  PgRoles roles(o.url, owner, app);  // declared before the database: dropped after it
  if (auto r = roles.create(); !r) {
    note("creating the roles: " + r.error().message);
    return 1;
  }
  auto scratch = PgScratch::create(o.url, owner);
  if (!scratch) {
    note(scratch.error().message);
    return 1;
  }
  auto admin_url = atrium::bench::with_user((*scratch)->url(), owner);
  auto app_url = atrium::bench::with_user((*scratch)->url(), app);
  if (!admin_url || !app_url) {
    note(!admin_url ? admin_url.error().message : app_url.error().message);
    return 1;
  }
  note("postgres: database " + (*scratch)->name() + ", migrating as " + owner + ", serving as " + app);
  atrium::Config config;
  config.storage.data_dir = (*dir)->path() + "/data";
  config.storage.database_url = *app_url;
  config.storage.admin_database_url = *admin_url;
  return run(o, config);
}

// ---- arguments -------------------------------------------------------------------------------------------------

constexpr const char* k_usage =
    "usage: atrium_billing_bench --backend sqlite|postgres --subscriptions N [--url URL] [--batch B]\n"
    "  --url    postgres: a superuser URL on the server to create scratch roles and a database on "
    "(default $ATRIUM_TEST_POSTGRES_URL); sqlite: not used\n"
    "  --batch  subscriptions per billing-run transaction, and baseline sets per transaction (default 500)\n"
    "Prints TSV lines: backend measure subscriptions batch seconds per_second\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "atrium_billing_bench: %s\n%s", message.c_str(), k_usage);
  std::exit(2);
}

std::int64_t parse_count(const std::string& flag, const std::string& text, std::int64_t max) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (...) {
    usage_error(flag + " needs a number (got '" + text + "')");
  }
  if (used != text.size() || v < 1 || v > max) {
    usage_error(flag + " must be 1-" + std::to_string(max) + " (got '" + text + "')");
  }
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    } else if (a == "--backend") {
      o.backend = value();
    } else if (a == "--subscriptions") {
      o.subscriptions = parse_count(a, value(), 999'999);  // six-digit slugs and invoice numbers
    } else if (a == "--batch") {
      o.batch = static_cast<int>(parse_count(a, value(), 100'000));
    } else if (a == "--url") {
      o.url = value();
    } else {
      usage_error("unknown argument '" + a + "'");
    }
  }
  if (o.backend != "sqlite" && o.backend != "postgres") usage_error("--backend must be sqlite or postgres");
  if (o.subscriptions == 0) usage_error("--subscriptions is required");
  if (o.url.empty() && o.backend == "postgres") {
    const char* env = std::getenv("ATRIUM_TEST_POSTGRES_URL");
    if (env == nullptr || *env == '\0') usage_error("--url is required for postgres");
    o.url = env;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  atrium::log::init(atrium::log::Level::warn, false);  // the library's warnings go to stderr, beside progress
  return o.backend == "sqlite" ? run_sqlite(o) : run_postgres(o);
}
