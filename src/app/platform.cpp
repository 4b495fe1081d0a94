#include "app/platform.hpp"

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "analytics/analytics.hpp"
#include "app/background.hpp"
#include "audit/audit_log.hpp"
#include "audit/exporter.hpp"
#include "billing/billing.hpp"
#include "billing/entitlements.hpp"
#include "billing/payments/gateway.hpp"
#include "churn/service.hpp"
#include "core/log.hpp"
#include "domains/dns.hpp"
#include "domains/domain_store.hpp"
#include "domains/domains.hpp"
#include "email/settings.hpp"
#include "events/outbox.hpp"
#include "gateway/api_calls.hpp"
#include "gateway/rate_limits.hpp"
#include "identity/api_keys.hpp"
#include "identity/invitations.hpp"
#include "identity/jwt.hpp"
#include "identity/key_store.hpp"
#include "identity/revocation.hpp"
#include "identity/secrets.hpp"
#include "identity/tenant_purge.hpp"
#include "identity/token_service.hpp"
#include "identity/user_store.hpp"
#include "metering/metering.hpp"
#include "privacy/personal_data.hpp"
#include "projects/project_store.hpp"
#include "protection/key_service.hpp"
#include "protection/keyring.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/outbox_marks.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_directory.hpp"
#include "warehouse/warehouse.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::app {

namespace {

using storage::Transaction;
using storage::Value;

constexpr storage::Statement k_grant_public{"platform_grant_public", "SELECT atrium_grant_schema_to('public', $1)"};
constexpr storage::Statement k_current_user{"platform_current_user", "SELECT current_user::text"};
constexpr storage::Statement k_role_flags{"platform_role_flags",
                                          "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"};
constexpr storage::Statement k_revoked_live{"platform_revoked_live",
                                            "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1"};

storage::DatabaseOptions database_options(const Config& config, const std::string& url) {
  storage::DatabaseOptions o;
  o.url = url;
  o.pool_size = static_cast<int>(config.storage.pool_size);
  o.statement_timeout = std::chrono::milliseconds(config.storage.statement_timeout_ms);
  o.busy_timeout = std::chrono::milliseconds(config.storage.busy_timeout_ms);
  o.connect_timeout = std::chrono::milliseconds(config.storage.connect_timeout_ms);
  return o;
}

Result<void> step(Result<void> r, std::string_view what) {
  if (!r) return fail(r.error().code, std::string(what) + ": " + r.error().message);
  return {};
}

// The gateway's rate limits: in Redis when gateway.redis_url is set, else in-process. A tenant's limits come from
// its plan in force (Billing::plan_in_force: the plan of its live subscription, else its catalog plan).
Result<std::unique_ptr<gateway::RateLimits>> open_rate_limits(billing::Billing& billing, metrics::Registry& registry,
                                                              const Config& config, const Clock& clock,
                                                              bool redis_time) {
  const GatewayConfig& g = config.gateway;
  std::unique_ptr<gateway::RateLimiter> limiter;
  if (g.redis_url.empty()) {
    limiter = gateway::make_memory_rate_limiter(clock, {.max_keys = static_cast<std::size_t>(g.max_keys)});
  } else {
    auto redis = gateway::make_redis_rate_limiter(
        g.redis_url,
        {.timeout = std::chrono::milliseconds(g.redis_timeout_ms), .clock = redis_time ? nullptr : &clock});
    if (!redis) return fail(redis.error().code, "gateway.redis_url: " + redis.error().message);
    limiter = std::move(*redis);
  }
  const gateway::RateLimitSettings settings{.default_rate = g.default_requests_per_second,
                                            .default_burst = g.default_burst,
                                            .api_key_rate = g.api_key_requests_per_second,
                                            .api_key_burst = g.api_key_burst,
                                            .fail_open = g.rate_limit_fail_open,
                                            .plan_cache_ttl = std::chrono::milliseconds(g.plan_cache_ttl_ms)};
  auto plan_limits = [&billing](const tenancy::Tenant& tenant) -> Result<Json> {
    auto in_force = billing.plan_in_force(tenant);
    if (!in_force) return std::unexpected(in_force.error());
    return in_force->plan ? in_force->plan->price.limits : Json();
  };
  return std::make_unique<gateway::RateLimits>(std::move(limiter), settings, std::move(plan_limits), clock, registry);
}

}  // namespace

// Applies audit retention at start and then once a day, as the owner role, recording each run in the audit log.
struct Platform::RetentionJob {
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;

  ~RetentionJob() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
  }
};

Platform::Platform(const Config& config, const Clock& clock) : api::Services(config, clock) {}

Result<warehouse::Warehouse*> Platform::warehouse() {
  std::lock_guard lock(warehouse_mutex_);
  if (!warehouse_) {
    const Config& c = config_;
    auto opened = warehouse::Warehouse::open({.url = c.analytics.warehouse_url,
                                              .data_dir = c.storage.data_dir,
                                              .lookback_days = static_cast<int>(c.analytics.etl_lookback_days),
                                              .reader_role = c.analytics.warehouse_reader_role,
                                              .chunk_days = 31},
                                             *tenant_data, clock_, &registry);
    if (!opened) return std::unexpected(opened.error());
    warehouse_ = std::move(*opened);
  }
  return warehouse_.get();
}

Platform::~Platform() {
  if (api_calls) api_calls->stop();  // its last report needs metering and the quotas
  if (analytics) analytics->stop();  // its last activity marks too
  background = nullptr;
  churn_actions = nullptr;
  workers_.reset();
  exporter_.reset();
  retention_.reset();
  while (!modules_.empty()) modules_.pop_back();  // each before what it was built from
}

void Platform::flush_audit_after_commit(const tenancy::Tenant& tenant) {
  if (auto r = flush_audit(tenant); !r) {
    log::warn("audit entries stay in the tenant's outbox for now",
              {{"tenant_id", tenant.id}, {"error", r.error().message}});
  }
}

Result<int> Platform::relay_pending_audit(const std::function<bool()>& stopping) {
  // Only the tenants marked as having written (tenancy::OutboxMarks): O(tenants with work), not O(tenants).
  tenancy::OutboxMarks& marks = tenant_data->outbox_marks();
  int moved = 0;
  std::string after;
  while (true) {
    auto page = marks.list(after, 100);
    if (!page) return std::unexpected(page.error());
    for (const auto& mark : *page) {
      if (stopping && stopping()) return moved;
      auto t = tenants->get(mark.tenant_id);
      if (!t && t.error().code != Errc::not_found) return std::unexpected(t.error());
      const bool gone = !t || t->status == tenancy::TenantStatus::deleted || tenant_data->shares_control_plane(*t);
      bool emptied = gone;
      if (!gone) {
        // A connection opened for this tenant alone is closed after (in_passing): the pass does not push the tenants
        // in use out of the connection budget. One tenant whose storage is unreachable must not keep the others
        // from starting.
        tenant_data->in_passing(*t, [&] {
          auto n = audit->relay(*tenant_data, *t);
          if (!n) {
            log::warn("audit outbox not relayed", {{"tenant_id", t->id}, {"error", n.error().message}});
            return;
          }
          moved += *n;
          if (auto e = events::move_to_control_plane(*tenant_data, *db_, *t); !e) {
            log::warn("event outbox not relayed", {{"tenant_id", t->id}, {"error", e.error().message}});
            return;
          }
          emptied = true;
        });
      }
      if (!emptied) continue;
      // Both outboxes were empty a moment ago: the mark goes once no write can still be in flight under it.
      if (auto c = marks.clear(mark, gone); !c) {
        log::warn("outbox mark not cleared", {{"tenant_id", mark.tenant_id}, {"error", c.error().message}});
      }
    }
    if (page->size() < 100) return moved;
    after = page->back().tenant_id;
  }
}

Result<void> Platform::start_audit_services() {
  std::vector<std::unique_ptr<audit::Sink>> sinks;
  if (!config_.audit.file_path.empty()) {
    auto sink = audit::make_file_sink({.path = config_.audit.file_path,
                                       .max_bytes = config_.audit.file_max_bytes,
                                       .max_files = static_cast<int>(config_.audit.file_max_files)});
    if (!sink) return fail(sink.error().code, "audit.file_path: " + sink.error().message);
    sinks.push_back(std::move(*sink));
  }
  if (!config_.audit.syslog_url.empty()) {
    auto sink = audit::make_syslog_sink({.url = config_.audit.syslog_url,
                                         .ca_file = config_.audit.syslog_ca_file,
                                         .app_name = config_.audit.syslog_app_name});
    if (!sink) return fail(sink.error().code, "audit.syslog_url: " + sink.error().message);
    sinks.push_back(std::move(*sink));
  }
  if (!sinks.empty()) {
    exporter_ = std::make_unique<audit::Exporter>(
        *audit, std::move(sinks),
        audit::ExporterOptions{.batch = static_cast<int>(config_.audit.export_batch),
                               .interval = std::chrono::milliseconds(config_.audit.export_interval_ms)},
        registry);
  }
  retention_ = std::make_unique<RetentionJob>();
  retention_->thread = std::thread([this, job = retention_.get()] {
    // What a crash left in tenant outboxes, first: in the background, so a start after many tenants wrote (a bulk
    // creation of database-level tenants: one connection each) is not delayed by it. Without the current schema
    // there is nothing to relay yet (`atrium migrate` has not run); the minute's sweep tries again.
    if (schema_current_at_open_) {
      auto relayed = relay_pending_audit([job] {
        std::lock_guard lock(job->mutex);
        return job->stopping;
      });
      if (!relayed) {
        log::warn("audit outboxes not relayed at start; the minute's sweep tries again",
                  {{"error", relayed.error().message}});
      } else if (*relayed > 0) {
        log::info("audit entries moved from tenant outboxes", {{"entries", *relayed}});
      }
    }
    // The exporter retries every audit.export_interval_ms and the retention a day later.
    while (true) {
      const auto cutoff = clock_.now() - std::chrono::days(config_.audit.retention_days);
      auto deleted = audit->apply_retention(admin_db(), cutoff);
      if (!deleted) log::warn("audit retention failed; retrying in a day", {{"error", deleted.error().message}});
      // Invoices of purged tenants, once the bookkeeping period is over (years: 365.2425 days each).
      const auto kept = std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::years(config_.billing.retain_invoices_years));
      auto invoices = billing->apply_retention(clock_.now() - kept);
      if (!invoices) {
        log::warn("invoice retention failed; retrying in a day", {{"error", invoices.error().message}});
      } else if (*invoices > 0) {
        log::info("invoice retention", {{"invoices_deleted", *invoices}});
      }
      std::unique_lock lock(job->mutex);
      if (job->cv.wait_for(lock, std::chrono::hours(24), [job] { return job->stopping; })) return;
    }
  });
  return {};
}

void Platform::audit_committed() {
  if (exporter_) exporter_->wake();
}

namespace {

// What billing needs of its configuration: the rules it applies and the seller shown on documents.
billing::Settings settings_of(const BillingConfig& config) {
  billing::Settings settings;
  settings.downgrade_credit = config.downgrade_credit;
  settings.days_until_due = config.days_until_due;
  settings.run_batch = static_cast<int>(config.run_batch);
  Json address = Json::array();
  std::string_view rest = config.issuer_address;
  while (!rest.empty()) {
    const auto bar = rest.find('|');
    address.push_back(std::string(rest.substr(0, bar)));
    rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
  }
  settings.issuer = {{"name", config.issuer_name},
                     {"email", config.issuer_email},
                     {"address", address},
                     {"country", config.issuer_country},
                     {"tax_ids", config.issuer_tax_id.empty() ? Json::array() : Json::array({config.issuer_tax_id})}};
  return settings;
}

}  // namespace

// The databases, the audit log, tenants and their data (migrated when asked).
Result<void> Platform::open_storage(const Options& options) {
  const Config& config = config_;
  const Clock& clock = clock_;
  const bool sqlite = config.storage.database_url.empty() || config.storage.database_url.rfind("sqlite:", 0) == 0;
  if (sqlite) {
    std::error_code ec;
    std::filesystem::create_directories(config.storage.data_dir, ec);
    if (ec) return fail(Errc::invalid_argument, "storage.data_dir " + config.storage.data_dir + ": " + ec.message());
  }
  const std::string url = config.storage.database_url.empty()
                              ? (std::filesystem::path(config.storage.data_dir) / "atrium.db").string()
                              : config.storage.database_url;
  auto db = storage::open_database(database_options(config, url));
  if (!db) return fail(db.error().code, "cannot open the database: " + db.error().message);
  database_ = std::move(*db);
  db_ = database_.get();
  const std::string admin_url = config.storage.admin_database_url.empty() ? url : config.storage.admin_database_url;
  if (admin_url != url) {
    auto admin = storage::open_database(database_options(config, admin_url));
    if (!admin) return fail(admin.error().code, "cannot open the admin database: " + admin.error().message);
    admin_db_ = std::move(*admin);
  }

  audit = adopt(std::make_unique<audit::AuditLog>(*db_, admin_db(), clock, config.audit.enabled));
  tenants = adopt(std::make_unique<tenancy::TenantStore>(*db_, clock));
  directory = adopt(std::make_unique<tenancy::TenantDirectory>(*tenants, clock,
                                                               std::chrono::milliseconds(config.tenancy.cache_ttl_ms)));
  if (auto k = open_keyring(); !k) return k;
  tenancy::TenantDataOptions data_options;
  data_options.sealer = keyring;
  data_options.data_dir = config.storage.data_dir;
  data_options.app_url = url;
  data_options.admin_url = admin_url;
  data_options.tenant_pool_size = static_cast<int>(config.tenancy.tenant_pool_size);
  data_options.max_open_tenant_pools = static_cast<int>(config.tenancy.max_open_tenant_pools);
  data_options.max_tenant_connections = static_cast<int>(config.tenancy.max_tenant_connections);
  data_options.pool_template = database_options(config, url);
  tenant_data = adopt(std::make_unique<tenancy::TenantData>(*db_, admin_db(), data_options, clock));

  if (options.migrate) {
    auto migrated = migrate_all(options.on_tenant_migrated);
    if (!migrated) return std::unexpected(migrated.error());
  }

  if (db_->backend() == storage::Backend::postgres) {
    auto flags = storage::transact_value<storage::ResultSet>(
        *db_, [](Transaction& tx) { return tx.execute(k_role_flags); }, {.read_only = true});
    if (flags && !flags->empty() && (flags->bool_at(0, 0).value_or(false) || flags->bool_at(0, 1).value_or(false))) {
      log::warn(
          "the serving database role is a superuser or has BYPASSRLS: row-level security does not protect "
          "tenants; serve as a role without them (docs/security.md)");
    }
  }
  return {};
}

// The keyring of fields encrypted at rest: the key service (local: key files sealed under the master key) and the
// data_keys table, on a small pool of its own (PostgreSQL) or a file of its own (SQLite), so a key loaded inside a
// request's transaction never waits on that transaction's pool or writer.
Result<void> Platform::open_keyring() {
  const Config& config = config_;
  auto master = identity::load_key_encryption_key(config.identity.key_encryption_key, config.storage.data_dir);
  if (!master) return std::unexpected(master.error());
  const std::string directory = config.protection.key_directory.empty()
                                    ? (std::filesystem::path(config.storage.data_dir) / "keys" / "kms").string()
                                    : config.protection.key_directory;
  auto kms = protection::make_local_key_service(directory, std::move(*master));
  if (!kms) return std::unexpected(kms.error());
  key_service_ = std::move(*kms);
  const bool sqlite = db_->backend() == storage::Backend::sqlite;
  std::string keys_url;
  if (sqlite) {
    const auto dir = std::filesystem::path(config.storage.data_dir) / "keys";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(Errc::invalid_argument, dir.string() + ": " + ec.message());
    keys_url = (dir / "data_keys.db").string();
  } else {
    keys_url = config.storage.database_url;
  }
  auto options = database_options(config, keys_url);
  options.pool_size = 2;
  auto keys_db = storage::open_database(options);
  if (!keys_db) return fail(keys_db.error().code, "cannot open the data key store: " + keys_db.error().message);
  keys_db_ = std::move(*keys_db);
  if (auto p = protection::Keyring::prepare(*keys_db_); !p) return step(p, "data key store");
  keyring = adopt(std::make_unique<protection::Keyring>(
      *keys_db_, *key_service_, clock_,
      protection::KeyringOptions{.encrypt = config.protection.encrypt_fields,
                                 .cache_ttl = std::chrono::milliseconds(config.protection.key_cache_ttl_ms),
                                 .cache_tenants = static_cast<std::size_t>(config.protection.key_cache_tenants)},
      &registry));
  return {};
}

std::vector<tenancy::SealedColumn> Platform::sealed_columns() {
  std::vector<tenancy::SealedColumn> out = billing::Billing::sealed_columns();
  for (auto& c : webhooks::sealed_columns()) out.push_back(c);
  for (auto& c : email::settings_store::sealed_columns()) out.push_back(c);
  for (auto& c : tenancy::idempotency_sealed_columns()) out.push_back(c);
  for (auto& c : metering::Metering::sealed_columns()) out.push_back(c);
  return out;
}

std::vector<std::pair<std::string, storage::PoolStats>> Platform::pool_stats() {
  std::vector<std::pair<std::string, storage::PoolStats>> out;
  out.emplace_back("main", database_->pool_stats());
  if (admin_db_) out.emplace_back("admin", admin_db_->pool_stats());
  if (keys_db_) out.emplace_back("keys", keys_db_->pool_stats());
  return out;
}

Result<void> Platform::shred_tenant_keys(const std::string& tenant_id) { return keyring->shred(tenant_id); }

// Signing keys, revocations, users, invitations, tokens and API keys.
Result<void> Platform::open_identity() {
  const Config& config = config_;
  const Clock& clock = clock_;
  auto kek = identity::load_key_encryption_key(config.identity.key_encryption_key, config.storage.data_dir);
  if (!kek) return std::unexpected(kek.error());
  identity::VerifyOptions verify;
  verify.issuer = config.identity.issuer;
  verify.audience = config.identity.audience;
  verify.leeway = std::chrono::seconds(config.identity.leeway_s);
  const audit::Context system{.actor_type = audit::ActorType::system, .actor_id = "startup"};
  // Custom domains: certificate keys are sealed under the same key-encryption key as the signing keys.
  auto resolver = domains::system_resolver(config.tenancy.dns_server);
  if (!resolver) return std::unexpected(resolver.error());
  domains = adopt(std::make_unique<domains::Domains>(
      *tenant_data, clock, std::move(*resolver), *kek,
      domains::DomainsOptions{.base_domain = config.tenancy.base_domain,
                              .cache_ttl = std::chrono::milliseconds(config.tenancy.domain_cache_ttl_ms)}));
  const std::string account_key = *kek;
  keys = adopt(std::make_unique<identity::KeyStore>(*db_, clock, std::move(*kek), verify,
                                                    std::chrono::seconds(config.identity.access_token_ttl_s),
                                                    audit->recorder(system)));
  auto schema = storage::migration_status(*db_, storage::builtin_migrations(db_->backend()));
  // At or ahead of this build (a newer release migrated: migrations only add, so this one keeps serving).
  const bool schema_current = schema && schema->current >= schema->latest;
  schema_current_at_open_ = schema_current;
  if (schema_current) {
    if (auto r = step(
            keys->load_or_create(identity::configured_jwt_alg(config.identity.jwt_algorithm), audit->recorder(system)),
            "signing keys");
        !r) {
      return std::unexpected(r.error());
    }
  } else {
    log::warn(
        "the database schema is not current: sign-in and authenticated routes answer 503 until `atrium "
        "migrate` has run");
  }

  identity::RevocationStore* revocations = nullptr;
  if (config.identity.redis_url.empty()) {
    revocations = adopt(identity::make_memory_revocation_store(clock));
  }
  if (config.identity.redis_url.empty() && schema_current) {
    // Revocations outlive restarts: reload the ones still in force.
    auto live = storage::transact_value<storage::ResultSet>(
        *db_, [&](Transaction& tx) { return tx.execute(k_revoked_live, {Value(format_rfc3339(clock.now()))}); },
        {.read_only = true});
    if (!live) return std::unexpected(live.error());
    for (std::size_t i = 0; i < live->rows.size(); ++i) {
      std::tm tm{};
      const std::string expires = live->text_at(i, 1).value_or("");
      if (!strptime(expires.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) continue;
      (void)identity::restore_revocation(*revocations, live->text_at(i, 0).value_or(""),
                                         std::chrono::system_clock::from_time_t(timegm(&tm)));
    }
  }
  if (!config.identity.redis_url.empty()) {
    auto redis = identity::make_redis_revocation_store(config.identity.redis_url, clock);
    if (!redis) return fail(redis.error().code, "identity.redis_url: " + redis.error().message);
    revocations = adopt(std::move(*redis));
  }

  // Addresses and names of user accounts, sealed under keys derived from the master key (the signing keys' one).
  const auto* accounts =
      adopt(std::make_unique<identity::AccountProtection>(account_key, config.protection.encrypt_fields));
  users = adopt(std::make_unique<identity::UserStore>(
      *db_, clock, identity::configured_password_cost(config.identity.password_cost), *accounts));
  if (schema_current) {
    auto protected_rows = users->protect_stored_accounts();
    if (!protected_rows) return step(Result<void>(std::unexpected(protected_rows.error())), "user accounts at rest");
    if (*protected_rows > 0) log::info("user accounts indexed and sealed", {{"accounts", *protected_rows}});
  }
  invitations = adopt(std::make_unique<identity::InvitationStore>(
      *db_, clock, *users, std::chrono::seconds(config.identity.invitation_ttl_s)));
  identity::TokenSettings settings;
  settings.access_ttl = std::chrono::seconds(config.identity.access_token_ttl_s);
  settings.refresh_ttl = std::chrono::seconds(config.identity.refresh_token_ttl_s);
  settings.max_failures_per_account = static_cast<int>(config.identity.max_failed_logins_per_account);
  settings.max_failures_per_address = static_cast<int>(config.identity.max_failed_logins_per_address);
  settings.failure_window = std::chrono::seconds(config.identity.failed_login_window_s);
  settings.leeway = std::chrono::seconds(config.identity.leeway_s);
  tokens = adopt(std::make_unique<identity::TokenService>(
      *db_, *users, *tenants, *keys, *revocations, clock, settings, config.identity.issuer, config.identity.audience,
      identity::configured_password_cost(config.identity.password_cost),
      identity::configured_jwt_alg(config.identity.jwt_algorithm)));
  api_keys = adopt(std::make_unique<identity::ApiKeyStore>(*db_, clock));
  return {};
}

// The payment gateway, billing, metering and what plans grant (entitlements).
Result<void> Platform::open_billing() {
  const Config& config = config_;
  const Clock& clock = clock_;
  if (config.billing.gateway != "simulated") {
    return fail(Errc::invalid_argument, "billing.gateway: only \"simulated\" is built in");
  }
  billing::PaymentGateway* payment_gateway = adopt(billing::simulated_gateway(*db_, clock));
  billing = adopt(std::make_unique<billing::Billing>(*db_, *tenant_data, *audit, clock, *payment_gateway,
                                                     settings_of(config.billing), [this] {
                                                       if (workers_) workers_->events_committed();
                                                     }));
  metering::Settings metering_settings;
  metering_settings.max_event_age = std::chrono::hours(config.metering.max_event_age_hours);
  metering_settings.max_future = std::chrono::seconds(config.metering.max_future_seconds);
  metering_settings.retain_events = std::chrono::days(config.metering.retain_events_days);
  metering =
      adopt(std::make_unique<metering::Metering>(*db_, *tenant_data, *audit, clock, registry, metering_settings));
  // Event properties are encrypted for the tenants whose settings ask for it (the directory's cached tenant).
  metering->set_tenant_ingestion([this](const std::string& tenant_id) -> Result<metering::Metering::TenantIngestion> {
    auto tenant = directory->resolve_id(tenant_id);
    if (!tenant) return std::unexpected(tenant.error());
    // A deleted tenant (or one an import is still writing) records no usage: what a process still held for it is
    // dropped (gateway::ApiCallCounter, analytics::Activity), never written into the tenant that comes back.
    if ((*tenant)->status == tenancy::TenantStatus::deleted) {
      return fail(Errc::not_found, "tenant " + tenant_id + " is deleted; its usage is no longer recorded");
    }
    return metering::Metering::TenantIngestion{.seal_properties = (*tenant)->settings.encrypt_event_properties};
  });
  // Renewals price metered usage; late events are billed while ingestion still accepts them for the period.
  billing->set_usage_meter([m = metering](tenancy::TenantTransaction& tx, const std::string& metric, Instant from,
                                          Instant to) { return m->measure(tx, metric, from, to); },
                           std::chrono::floor<std::chrono::seconds>(metering_settings.max_event_age));
  // Counted quotas: projects and webhook endpoints in the tenant's own data, API keys in the control plane.
  auto count_resource = [this](const std::string& tenant_id, std::string_view quota) -> Result<std::int64_t> {
    auto tenant = directory->resolve_id(tenant_id);
    if (!tenant) return std::unexpected(tenant.error());
    if (quota == billing::k_custom_domains_quota) return domains->count(tenant_id);
    const bool integrations = quota == billing::k_integrations_quota;
    std::int64_t n = 0;
    auto r = tenant_data->transact(**tenant,
                                   [&](tenancy::TenantTransaction& tx) -> Result<void> {
                                     auto c =
                                         integrations ? webhooks::store::count(tx) : projects::project_store::count(tx);
                                     if (!c) return std::unexpected(c.error());
                                     n = *c;
                                     return {};
                                   },
                                   {.read_only = true});
    if (!r) return std::unexpected(r.error());
    if (integrations) {
      auto keys = api_keys->count(tenant_id);
      if (!keys) return std::unexpected(keys.error());
      n += *keys;
    }
    return n;
  };
  entitlements = adopt(std::make_unique<billing::Entitlements>(
      *tenant_data, *billing, *metering, *audit, clock, std::chrono::milliseconds(config.gateway.plan_cache_ttl_ms),
      std::move(count_resource), [this] {
        if (workers_) workers_->events_committed();
      }));
  metering->set_quota_hooks(entitlements->metering_hooks());
  return {};
}

// API call counting and rate limits; and what changed a plan reaches every cache of what it grants.
Result<void> Platform::open_gateway(const Options& options) {
  const Config& config = config_;
  const Clock& clock = clock_;
  if (config.gateway.count_api_calls) {
    api_calls = adopt(std::make_unique<gateway::ApiCallCounter>(
        [m = metering](const std::string& tenant_id, std::int64_t calls, Instant at,
                       const std::string& key) -> Result<void> {
          metering::UsageEvent event{.idempotency_key = key, .metric = "api_calls", .quantity = calls, .timestamp = at};
          auto r = m->ingest(tenant_id, {metering::UsageEntry{.event = event, .unreadable = {}}});
          if (!r) return std::unexpected(r.error());
          // A hard quota refused the whole count: what still fits is recorded, so usage reaches the limit.
          if (r->accepted == 0 && !r->rejected.empty() && r->rejected.front().room.value_or(0) > 0) {
            event.quantity = std::min(calls, *r->rejected.front().room);
            event.idempotency_key = key + ":within-limit";
            auto filled = m->ingest(tenant_id, {metering::UsageEntry{.event = event, .unreadable = {}}});
            if (!filled) return std::unexpected(filled.error());
          }
          return {};  // the rest is beyond a hard quota: not recorded
        },
        clock, std::chrono::milliseconds(config.gateway.api_calls_report_ms)));
  }
  analytics::Settings analytics_settings{
      .activity_flush = std::chrono::milliseconds(config.analytics.activity_flush_ms),
      .realtime_window = std::chrono::minutes(config.analytics.realtime_minutes),
      .realtime = {.flush_interval = std::chrono::milliseconds(config.analytics.realtime_flush_ms)}};
  if (!config.analytics.redis_url.empty()) {
    auto endpoint = storage::parse_redis_url(config.analytics.redis_url);
    if (!endpoint) return fail(Errc::invalid_argument, "analytics.redis_url: " + endpoint.error().message);
    analytics_settings.realtime.redis = std::move(*endpoint);
  }
  analytics = adopt(
      std::make_unique<analytics::Analytics>(*metering, *tenant_data, *db_, clock, std::move(analytics_settings)));
  churn =
      adopt(std::make_unique<churn::Service>(*tenant_data, clock, static_cast<int>(config.churn.threads), &registry));
  personal_data =
      adopt(std::make_unique<privacy::PersonalData>(*tenant_data, *audit, *tokens, users->protection(), clock));
  auto limits = open_rate_limits(*billing, registry, config, clock, options.rate_limits_use_redis_time);
  if (!limits) return std::unexpected(limits.error());
  rate_limits = adopt(std::move(*limits));
  // Whatever changed a tenant's plan in force (the API, the billing run, a test clock, the CLI), what it grants is
  // looked up afresh at once on this instance; other instances follow within gateway.plan_cache_ttl_ms.
  billing->on_plan_changed([entitlements = entitlements, limits = rate_limits, tenants = tenants,
                            directory = directory](const std::string& tenant_id) {
    entitlements->forget(tenant_id);
    limits->forget(tenant_id);
    if (auto t = tenants->get(tenant_id)) directory->invalidate(*t);  // its `plan` follows the subscription
  });
  return {};
}

Result<std::unique_ptr<Platform>> Platform::open(const Config& config, const Clock& clock, const Options& options) {
  std::unique_ptr<Platform> p(new Platform(config, clock));
  if (auto r = p->open_storage(options); !r) return std::unexpected(r.error());
  if (auto r = p->open_identity(); !r) return std::unexpected(r.error());
  if (auto r = p->open_billing(); !r) return std::unexpected(r.error());
  if (auto r = p->open_gateway(options); !r) return std::unexpected(r.error());
  if (options.background) {
    auto workers = Background::open(*p);
    if (!workers) return std::unexpected(workers.error());
    p->workers_ = std::move(*workers);
    p->background = p->workers_.get();
    p->churn_actions = p->workers_.get();
  }
  return p;
}

Result<int> Platform::migrate_all(const std::function<void(int done, int total)>& progress) {
  storage::Database& admin = admin_db();
  const auto backend = admin.backend();
  auto applied =
      storage::migrate(admin, storage::builtin_migrations(backend, storage::MigrationSet::control_plane), clock_,
                       [](const storage::Migration& m) {
                         log::info("migration applied", {{"set", "control"}, {"version", m.version}, {"name", m.name}});
                       });
  if (!applied) return fail(applied.error().code, "control-plane migrations: " + applied.error().message);
  auto shared = storage::migrate(
      admin, storage::builtin_migrations(backend, storage::MigrationSet::tenant), clock_,
      [](const storage::Migration& m) {
        log::info("migration applied", {{"set", "tenant"}, {"version", m.version}, {"name", m.name}});
      },
      storage::MigrationSet::tenant);
  if (!shared) return fail(shared.error().code, "tenant migrations (shared tables): " + shared.error().message);
  if (backend == storage::Backend::postgres && admin_db_) {
    auto role = tenant_data->serving_role();
    if (!role) return std::unexpected(role.error());
    auto granted = admin.transact([&](Transaction& tx) -> Result<void> {
      auto r = tx.execute(k_grant_public, {Value(*role)});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    if (!granted) return fail(granted.error().code, "granting the serving role: " + granted.error().message);
  }
  // Tenants with their own schema, database or file whose store is behind this build (the control plane records
  // each one's version): each is migrated on its own and records its own progress, so an interrupted run resumes
  // where it stopped, and a run with nothing to do reads no tenant's store.
  const auto tenant_migrations = storage::builtin_migrations(backend, storage::MigrationSet::tenant);
  const int latest = tenant_migrations.empty() ? 0 : tenant_migrations.back().version;
  std::vector<tenancy::Tenant> own;
  std::optional<std::string> cursor;
  while (true) {
    auto page = tenants->list_behind(latest, cursor, 100);
    if (!page) return std::unexpected(page.error());
    for (auto& t : page->tenants) own.push_back(std::move(t));
    if (!page->next_cursor) break;
    cursor = page->next_cursor;
  }
  int done = 0;
  int total_applied = *applied + *shared;
  for (const auto& t : own) {
    auto r = tenant_data->provision(t);  // idempotent: creates what is missing, applies what is pending
    if (!r) return fail(r.error().code, "tenant " + t.slug + ": " + r.error().message);
    ++done;
    if (progress) progress(done, static_cast<int>(own.size()));
  }
  return total_applied;
}

Result<tenancy::Tenant> Platform::create_tenant(const NewTenantRequest& request, const audit::Context& who) {
  if (request.owner_email && !identity::UserStore::valid_email(*request.owner_email)) {
    return fail(Errc::invalid_argument, "owner_email is not a valid address");
  }
  auto created = tenants->create(request.tenant, recorder(who));
  if (!created) return created;
  if (auto r = tenant_data->provision(*created); !r) {
    log::error("tenant provisioning failed", {{"tenant_id", created->id}, {"error", r.error().message}});
    const audit::Context system{.actor_type = audit::ActorType::system, .actor_id = "provisioning"};
    (void)tenants->update(created->id, tenancy::TenantPatch{.status = tenancy::TenantStatus::deleted},
                          recorder(system));
    return fail(r.error().code, "provisioning failed: " + r.error().message);
  }
  if (request.owner_email) {
    auto owner = users->add_member(created->id, *request.owner_email, request.owner_name.value_or(""),
                                   request.owner_password, identity::Role::owner, audit->recorder(who));
    if (!owner) return fail(owner.error().code, "tenant created, but its owner was not: " + owner.error().message);
  }
  return created;
}

Result<tenancy::Tenant> Platform::update_tenant(const std::string& id, const tenancy::TenantPatch& patch,
                                                const audit::Context& who) {
  if (patch.plan) {
    // tenants.plan follows the live subscription (billing writes it); the plan changes through the subscription.
    auto current = tenants->get(id);
    if (!current) return std::unexpected(current.error());
    auto in_force = billing->plan_in_force(*current);
    if (!in_force) return std::unexpected(in_force.error());
    if (in_force->subscription && *patch.plan != current->plan) {
      return fail(Errc::conflict, "the tenant's plan follows its subscription " + in_force->subscription->id +
                                      "; change the subscription's plan instead");
    }
  }
  auto updated = tenants->update(id, patch, recorder(who));
  if (!updated) return updated;
  directory->invalidate(*updated);
  if (updated->status == tenancy::TenantStatus::deleted) {
    // A deleted tenant is billed no more: its subscriptions end now (again on a retried DELETE, if this failed).
    auto ended = billing->cancel_all(id, "tenant_deleted", who);
    if (!ended) return std::unexpected(ended.error());
    if (*ended > 0) {
      auto reread = tenants->get(id);  // its plan went back to the default with them
      if (!reread) return std::unexpected(reread.error());
      updated = std::move(*reread);
    }
  }
  if (workers_) workers_->events_committed();
  return updated;
}

// The tenant's rows in the control plane's tables, in one transaction scoped to it: memberships, API keys, refresh
// tokens, invitations, billing (but the bookkeeping records, kept billing.retain_invoices_years), usage, quota
// state and events not relayed yet. Its audit entries stay for audit.retention_days.
Result<void> Platform::purge_control_plane(const std::string& tenant_id) {
  std::vector<tenancy::TenantStatement> all(identity::purge_statements().begin(), identity::purge_statements().end());
  for (const auto& list :
       {billing::Billing::purge_statements(), metering::Metering::purge_statements(), events::purge_statements(),
        domains::store::purge_statements(), churn::Service::purge_statements()}) {
    all.insert(all.end(), list.begin(), list.end());
  }
  return tenant_data->transact_control_plane(tenant_id, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    for (const auto& statement : all) {
      if (auto r = tx.execute(statement); !r) return std::unexpected(r.error());
    }
    return {};
  });
}

Result<void> Platform::purge_tenant(const std::string& id, const audit::Context& who) {
  auto t = tenants->get(id);
  if (!t) return std::unexpected(t.error());
  if (t->status != tenancy::TenantStatus::deleted) return fail(Errc::conflict, "only a deleted tenant can be purged");
  // Audit entries still in the tenant's own outbox move to the control plane before its storage goes (unless an
  // earlier purge already removed the storage and only failed later).
  auto exists = tenant_data->own_store_exists(*t);
  if (!exists) return std::unexpected(exists.error());
  if (*exists) {
    if (auto r = flush_audit(*t); !r) return r;
  }
  if (*exists) {
    if (auto r = events::move_to_control_plane(*tenant_data, *db_, *t); !r) return std::unexpected(r.error());
  }
  // Crypto-shredding first: once the tenant's keys are gone, every copy of its encrypted fields is unreadable,
  // backups included, whatever happens to the steps after this one.
  if (auto r = shred_tenant_keys(id); !r) return r;
  if (auto r = tenant_data->purge(*t); !r) return r;
  if (auto r = purge_control_plane(id); !r) return r;
  directory->invalidate(*t);
  return tenants->mark_purged(id, audit->recorder(who));
}

Result<void> Platform::flush_audit(const tenancy::Tenant& tenant) {
  if (!tenant_data->shares_control_plane(tenant)) {
    // Both outboxes, each whatever happens to the other.
    auto moved = audit->relay(*tenant_data, tenant);
    auto events = events::move_to_control_plane(*tenant_data, *db_, tenant);
    if (!moved) return std::unexpected(moved.error());
    if (!events) return std::unexpected(events.error());
  }
  if (workers_) workers_->events_committed();
  return {};
}

audit::Recorder Platform::recorder(const audit::Context& who) {
  return [this, inner = audit->recorder(who)](storage::Transaction& tx, const audit::Event& e) -> Result<void> {
    if (auto r = audit::record(inner, tx, e); !r) return r;
    static constexpr std::string_view lifecycle[] = {"tenant.created", "tenant.suspended", "tenant.reactivated",
                                                     "tenant.deleted"};
    if (std::find(std::begin(lifecycle), std::end(lifecycle), e.action) == std::end(lifecycle)) return {};
    // The event is the tenant's: its transaction is scoped to it (pending_events' RLS admits only that tenant's).
    if (auto s = tenancy::scope_to_tenant(tx, e.resource_id); !s) return s;
    auto emitted = events::emit(tx, clock_, e.resource_id, e.action, {{"id", e.resource_id}, {"changes", e.changes}});
    if (!emitted) return std::unexpected(emitted.error());
    return {};
  };
}

}  // namespace atrium::app
