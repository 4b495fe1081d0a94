#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace atrium {

// Typed configuration. Every key is listed in docs/configuration.md with its default. Values come from, in
// rising precedence: built-in defaults, the TOML file given by --config, ATRIUM_<SECTION>_<KEY> environment
// variables, and command-line flags.
struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::int64_t io_threads = 0;      // 0: one per core
  std::int64_t worker_threads = 0;  // threads for handlers that block (database work); 0: 2 per core, at least 4
  std::string tls_cert;             // PEM certificate chain; TLS 1.3 only when set (with tls_key)
  std::string tls_key;              // PEM private key file
  std::int64_t max_body_bytes = 1 << 20;
  std::int64_t max_header_bytes = 16 << 10;
  std::int64_t max_json_depth = 64;
  std::int64_t header_timeout_ms = 10'000;  // from the first byte of a request to the end of its headers
  std::int64_t body_timeout_ms = 30'000;    // to receive the whole body once headers are in
  std::int64_t idle_timeout_ms = 60'000;    // keep-alive connection with no request in progress
  std::int64_t drain_timeout_ms = 30'000;   // how long shutdown waits for in-flight requests
  // Origins browsers may call the API from (CORS), comma-separated: "https://app.example.com,http://localhost:5173",
  // or "*" for any. Empty: no CORS answers (a cross-origin browser call is refused by the browser).
  std::string cors_origins;
};

// The origins of server.cors_origins, each "scheme://host[:port]" (or the one entry "*"); invalid_argument naming the
// first one that is not.
Result<std::vector<std::string>> parse_cors_origins(const std::string& text);
// An origin as a browser sends it in `Origin`: http or https, "://", a host (and port) without path, query, user info
// or spaces. Not "*".
bool is_origin(std::string_view text);

struct StorageConfig {
  std::string data_dir = "./data";
  std::string database_url;        // empty: SQLite at <data_dir>/atrium.db; else postgresql://...
  std::string admin_database_url;  // PostgreSQL owner role for migrations and provisioning; empty: database_url
  std::int64_t pool_size = 8;
  std::int64_t statement_timeout_ms = 30'000;
  std::int64_t busy_timeout_ms = 5'000;
  std::int64_t connect_timeout_ms = 5'000;
  bool migrate_on_start = true;
};

struct IdentityConfig {
  std::string issuer = "atrium";
  std::string audience = "atrium-api";
  std::string jwt_algorithm = "RS256";  // RS256 | ES256 | EdDSA, for new signing keys
  std::int64_t access_token_ttl_s = 3600;
  std::int64_t refresh_token_ttl_s = 30 * 24 * 3600;
  std::int64_t leeway_s = 30;
  std::string key_encryption_key;             // base64 of 32 bytes; empty: <data_dir>/keys/master.key
  std::string password_cost = "interactive";  // interactive | moderate | minimum (tests only)
  std::string redis_url;                      // empty: token revocation in-process; else redis://...
  std::int64_t max_failed_logins_per_account = 5;
  std::int64_t max_failed_logins_per_address = 20;
  std::int64_t failed_login_window_s = 900;
  std::int64_t invitation_ttl_s = 7 * 86400;  // how long an invitation's token can be accepted
};

struct TenancyConfig {
  std::string base_domain;  // "example.com": <slug>.example.com selects the tenant
  std::string default_isolation = "shared";
  std::int64_t cache_ttl_ms = 5000;
  std::int64_t tenant_pool_size = 4;
  std::int64_t max_open_tenant_pools = 64;
  std::int64_t max_tenant_connections = 128;  // all tenant pools' connections together (0: no cap beyond the pools')
  // Custom domains: the DNS server that answers their verification TXT lookups ("ip[:port]"; empty: the system's,
  // /etc/resolv.conf), and how long another instance's verification may take to be seen here.
  std::string dns_server;
  std::int64_t domain_cache_ttl_ms = 10'000;
};

struct AuditConfig {
  bool enabled = true;                     // false: nothing is recorded (benchmarks only)
  std::int64_t retention_days = 365;       // entries of a purged tenant are kept this long after the purge
  std::int64_t export_batch = 500;         // entries per SIEM write
  std::int64_t export_interval_ms = 1000;  // how often the exporter looks for entries (and retries a failed sink)
  std::string file_path;                   // JSON lines sink; empty: off
  std::int64_t file_max_bytes = 100LL << 20;
  std::int64_t file_max_files = 10;
  std::string syslog_url;  // udp://host:port | tcp://host:port | tls://host:port; empty: off
  std::string syslog_ca_file;
  std::string syslog_app_name = "atrium";
};

struct JobsConfig {
  bool embedded = true;   // serve runs the job runner, event relay and scheduler in-process (off: `atrium worker`)
  std::string queue_url;  // empty: the SQL queue in the control-plane database; amqp://... : RabbitMQ
  std::string queue_prefix = "atrium";                                 // RabbitMQ: prefix of the exchanges and queues
  std::string concurrency = "default=4,webhooks=4,email=2,reports=1";  // threads per queue
  std::int64_t lease_ms = 300'000;
  std::int64_t poll_interval_ms = 250;
  std::int64_t backoff_base_ms = 1000;
  std::int64_t backoff_max_ms = 3'600'000;
  std::int64_t shutdown_grace_ms = 30'000;
  std::int64_t relay_interval_ms = 1000;
  std::int64_t retain_done_hours = 168;
  std::int64_t retain_dead_days = 30;
  std::int64_t idempotency_key_hours = 24;  // stored Idempotency-Key answers are kept this long
  std::int64_t retain_reports_days = 30;    // built reports (and their CSV) are deleted after this long
  std::string time_zone = "UTC";            // of the cron expressions below
  std::string cleanup_cron = "17 3 * * *";
  std::string heartbeat_cron;  // a no-op job on this schedule, to watch the scheduler; empty: off
  // `atrium worker` serves /health, /ready and /metrics here (HOST:PORT); empty: no listener.
  std::string worker_listen;
};

struct WebhooksConfig {
  std::string retry_schedule = "30s,2m,10m,30m,1h,3h,6h,12h,24h,24h";  // delays after each failed attempt
  bool allow_private_targets = false;  // non-public and host-own addresses as endpoint targets (tests, on-premises)
  std::int64_t timeout_ms = 10'000;
  std::int64_t retain_deliveries_days = 30;  // ended deliveries leave the delivery log after this long
  std::string platform_url;                  // where platform events (churn.risk_high) are posted; empty: nowhere
  std::string platform_secret;               // their signing secret (whsec_...), required with platform_url
};

struct EmailConfig {
  std::string smtp_url;  // empty: messages are written as .eml files under <data_dir>/mail
  std::string smtp_username;
  std::string smtp_password;
  bool smtp_starttls = false;
  std::string from = "Atrium <no-reply@atrium.localhost>";
};

struct BillingConfig {
  std::string gateway = "simulated";        // the payment provider; "simulated" is the only one built in
  bool downgrade_credit = true;             // a downgrade's proration net goes to the account's credit balance
  std::string run_cron = "*/10 * * * *";    // the billing run (renewals, invoices, charges, dunning); empty: never
  std::int64_t run_batch = 500;             // subscriptions per billing-run transaction
  std::int64_t days_until_due = 0;          // shown as the due date on documents
  std::int64_t retain_invoices_years = 10;  // a purged tenant's invoices and credit notes are kept this long
  std::string issuer_name = "Atrium";       // the seller on invoices and credit notes
  std::string issuer_email;
  std::string issuer_address;  // lines separated by "|"
  std::string issuer_country;
  std::string issuer_tax_id;
};

struct MeteringConfig {
  std::int64_t retain_events_days = 430;   // raw usage events (and so their idempotency keys); at least 35
  std::int64_t max_event_age_hours = 840;  // older events are rejected as too old for any open period (35 days)
  std::int64_t max_future_seconds = 300;   // events further ahead of the server's clock are rejected
};

struct GatewayConfig {
  std::int64_t default_requests_per_second = 100;  // a tenant's rate limit when its plan names none; 0: unlimited
  std::int64_t default_burst = 200;                // a tenant's burst when its plan names none; 0: equal to the rate
  std::int64_t api_key_requests_per_second = 0;    // each API key's own limit, on top of its tenant's; 0: none
  std::int64_t api_key_burst = 0;                  // 0: equal to api_key_requests_per_second
  std::int64_t plan_cache_ttl_ms = 30'000;         // how long a tenant's plan limits are reused per process
  std::string redis_url;                           // empty: rate limits in-process; else redis://... (shared)
  std::int64_t redis_timeout_ms = 100;             // per rate-limit decision in Redis
  bool rate_limit_fail_open = true;                // Redis unreachable: let requests through (true) or 503 (false)
  std::int64_t max_keys = 100'000;                 // rate-limit keys held by the in-process limiter
  std::string version_docs_url = "/openapi.json";  // Link rel="deprecation" target on deprecated API versions
  bool count_api_calls = true;                     // report each tenant's requests as usage (metric api_calls)
  std::int64_t api_calls_report_ms = 60'000;       // how often those counts are reported
};

struct AnalyticsConfig {
  std::int64_t activity_flush_ms = 5'000;     // how often users' activity marks and sign-ins are stored
  std::int64_t realtime_minutes = 180;        // how far back the real-time counters reach
  std::string redis_url;                      // empty: real-time counters in-process; else redis://... (shared)
  std::int64_t realtime_flush_ms = 1'000;     // Redis: how often buffered real-time counts are written
  std::int64_t business_metrics_ms = 60'000;  // how often /metrics' subscription and revenue figures are read
  std::string warehouse_url;                  // empty: SQLite at <data_dir>/warehouse.db; else postgresql://...
  std::string warehouse_reader_role;          // PostgreSQL role granted SELECT on the warehouse (BI tools)
  std::string etl_cron = "*/15 * * * *";      // when the warehouse ETL runs ("" never, but by the CLI)
  std::int64_t etl_lookback_days = 3;         // days before the watermark each run loads again (late rows)
};

struct ChurnConfig {
  std::string score_cron = "0 3 * * *";  // the daily batch scoring every customer ("" never, but by the API)
  std::int64_t threads = 0;              // cores for training (parallel model tasks) and scoring (0: every core)
};

struct ProxyConfig {
  std::string routes_file;                         // the gateway's routes to upstreams (docs/gateway.md); "": none
  std::string token_audience = "atrium-upstream";  // aud of the identity token upstreams receive
  std::int64_t token_ttl_s = 60;                   // its lifetime
  std::int64_t max_idle_per_endpoint = 64;         // idle keep-alive connections kept per upstream endpoint
  std::int64_t pool_idle_timeout_ms = 30'000;      // an idle upstream connection older than this is closed
};

struct ProtectionConfig {
  bool encrypt_fields = true;               // seal personal and secret fields at rest (docs/data-protection.md)
  std::string key_provider = "local";       // where key-encryption keys live: "local" (files under key_directory)
  std::string key_directory;                // "": <data_dir>/keys/kms; keep it out of database backups
  std::int64_t key_cache_ttl_ms = 60'000;   // how long an instance seals with a cached data key before re-reading
  std::int64_t key_cache_tenants = 10'000;  // tenants whose unwrapped data keys stay in memory (least recent leave)
};

struct MetricsConfig {
  // The seed's tenant_id label on http_requests_total and http_request_duration_seconds: the first
  // tenant_label_limit tenants seen get their own value, later ones share "other" (series stay bounded).
  bool tenant_label = false;
  std::int64_t tenant_label_limit = 100;
};

struct LogConfig {
  std::string level = "info";
  std::string format = "json";  // json | text
  bool access_log = true;
};

struct Config {
  ServerConfig server;
  StorageConfig storage;
  IdentityConfig identity;
  TenancyConfig tenancy;
  AuditConfig audit;
  JobsConfig jobs;
  WebhooksConfig webhooks;
  EmailConfig email;
  BillingConfig billing;
  MeteringConfig metering;
  GatewayConfig gateway;
  AnalyticsConfig analytics;
  ChurnConfig churn;
  ProxyConfig proxy;
  ProtectionConfig protection;
  MetricsConfig metrics;
  LogConfig log;
};

// Flag values given on the command line; each set one overrides every other source.
using ConfigOverrides = std::map<std::string, std::string>;  // "section.key" -> text

// Builds the effective configuration. `toml_path` may be empty. `environment` holds NAME=VALUE pairs (normally
// from environ); variables starting with ATRIUM_ whose section is known must name a known key. Returns
// invalid_argument naming the offending key on an unknown key, a value of the wrong type or out of range.
Result<Config> load_config(const std::string& toml_path, const std::vector<std::string>& environment,
                           const ConfigOverrides& overrides);

// Checks cross-key rules (listen address syntax, TLS files readable, known log level, ...).
Result<void> validate_config(const Config& config);

// "section.key = value" lines for every key, secrets (passwords in URLs) redacted.
std::string render_config(const Config& config);

// The database URL with any password replaced by "***".
std::string redact_url(const std::string& url);

// Splits "host:port" (IPv6 as "[::1]:8080").
Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& listen);

// Metadata for documentation and tests: every key as "section.key".
std::vector<std::string> config_keys();

}  // namespace atrium
