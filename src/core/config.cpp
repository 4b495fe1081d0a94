#include "core/config.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <variant>

namespace atrium {

namespace {

using Ref = std::variant<std::string*, std::int64_t*, bool*>;

struct Key {
  std::string_view section;
  std::string_view name;
  std::function<Ref(Config&)> ref;
  std::int64_t min = 0;
  std::int64_t max = 0;
  bool secret = false;
};

template <class Section, class T>
std::function<Ref(Config&)> member(Section Config::*section, T Section::*field) {
  return [section, field](Config& c) -> Ref { return &(c.*section.*field); };
}

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
      {"server", "listen", member(&Config::server, &ServerConfig::listen)},
      {"server", "io_threads", member(&Config::server, &ServerConfig::io_threads), 0, 256},
      {"server", "worker_threads", member(&Config::server, &ServerConfig::worker_threads), 0, 1024},
      {"server", "tls_cert", member(&Config::server, &ServerConfig::tls_cert)},
      {"server", "tls_key", member(&Config::server, &ServerConfig::tls_key)},
      {"server", "max_body_bytes", member(&Config::server, &ServerConfig::max_body_bytes), 1, 1LL << 34},
      {"server", "max_header_bytes", member(&Config::server, &ServerConfig::max_header_bytes), 1024, 1 << 20},
      {"server", "max_json_depth", member(&Config::server, &ServerConfig::max_json_depth), 1, 1024},
      {"server", "header_timeout_ms", member(&Config::server, &ServerConfig::header_timeout_ms), 1, 3'600'000},
      {"server", "body_timeout_ms", member(&Config::server, &ServerConfig::body_timeout_ms), 1, 3'600'000},
      {"server", "idle_timeout_ms", member(&Config::server, &ServerConfig::idle_timeout_ms), 1, 3'600'000},
      {"server", "drain_timeout_ms", member(&Config::server, &ServerConfig::drain_timeout_ms), 0, 3'600'000},
      {"server", "cors_origins", member(&Config::server, &ServerConfig::cors_origins)},
      {"storage", "data_dir", member(&Config::storage, &StorageConfig::data_dir)},
      {"storage", "database_url", member(&Config::storage, &StorageConfig::database_url), 0, 0, true},
      {"storage", "admin_database_url", member(&Config::storage, &StorageConfig::admin_database_url), 0, 0, true},
      {"storage", "pool_size", member(&Config::storage, &StorageConfig::pool_size), 1, 1024},
      {"storage", "statement_timeout_ms", member(&Config::storage, &StorageConfig::statement_timeout_ms), 0,
       86'400'000},
      {"storage", "busy_timeout_ms", member(&Config::storage, &StorageConfig::busy_timeout_ms), 0, 600'000},
      {"storage", "connect_timeout_ms", member(&Config::storage, &StorageConfig::connect_timeout_ms), 1000, 600'000},
      {"storage", "migrate_on_start", member(&Config::storage, &StorageConfig::migrate_on_start)},
      {"identity", "issuer", member(&Config::identity, &IdentityConfig::issuer)},
      {"identity", "audience", member(&Config::identity, &IdentityConfig::audience)},
      {"identity", "jwt_algorithm", member(&Config::identity, &IdentityConfig::jwt_algorithm)},
      {"identity", "access_token_ttl_s", member(&Config::identity, &IdentityConfig::access_token_ttl_s), 60, 86'400},
      {"identity", "refresh_token_ttl_s", member(&Config::identity, &IdentityConfig::refresh_token_ttl_s), 300,
       365LL * 86'400},
      {"identity", "leeway_s", member(&Config::identity, &IdentityConfig::leeway_s), 0, 300},
      {"identity", "invitation_ttl_s", member(&Config::identity, &IdentityConfig::invitation_ttl_s), 3600,
       30LL * 86'400},
      {"identity", "key_encryption_key", member(&Config::identity, &IdentityConfig::key_encryption_key), 0, 0, true},
      {"identity", "password_cost", member(&Config::identity, &IdentityConfig::password_cost)},
      {"identity", "redis_url", member(&Config::identity, &IdentityConfig::redis_url), 0, 0, true},
      {"identity", "max_failed_logins_per_account",
       member(&Config::identity, &IdentityConfig::max_failed_logins_per_account), 1, 1000},
      {"identity", "max_failed_logins_per_address",
       member(&Config::identity, &IdentityConfig::max_failed_logins_per_address), 1, 100000},
      {"identity", "failed_login_window_s", member(&Config::identity, &IdentityConfig::failed_login_window_s), 1,
       86'400},
      {"tenancy", "base_domain", member(&Config::tenancy, &TenancyConfig::base_domain)},
      {"tenancy", "default_isolation", member(&Config::tenancy, &TenancyConfig::default_isolation)},
      {"tenancy", "cache_ttl_ms", member(&Config::tenancy, &TenancyConfig::cache_ttl_ms), 0, 3'600'000},
      {"tenancy", "tenant_pool_size", member(&Config::tenancy, &TenancyConfig::tenant_pool_size), 1, 256},
      {"tenancy", "max_open_tenant_pools", member(&Config::tenancy, &TenancyConfig::max_open_tenant_pools), 1, 100'000},
      {"tenancy", "max_tenant_connections", member(&Config::tenancy, &TenancyConfig::max_tenant_connections), 0,
       1'000'000},
      {"tenancy", "dns_server", member(&Config::tenancy, &TenancyConfig::dns_server)},
      {"tenancy", "domain_cache_ttl_ms", member(&Config::tenancy, &TenancyConfig::domain_cache_ttl_ms), 0, 3'600'000},
      {"audit", "enabled", member(&Config::audit, &AuditConfig::enabled)},
      {"audit", "retention_days", member(&Config::audit, &AuditConfig::retention_days), 1, 36'500},
      {"audit", "export_batch", member(&Config::audit, &AuditConfig::export_batch), 1, 100'000},
      {"audit", "export_interval_ms", member(&Config::audit, &AuditConfig::export_interval_ms), 10, 3'600'000},
      {"audit", "file_path", member(&Config::audit, &AuditConfig::file_path)},
      {"audit", "file_max_bytes", member(&Config::audit, &AuditConfig::file_max_bytes), 4096, 1LL << 40},
      {"audit", "file_max_files", member(&Config::audit, &AuditConfig::file_max_files), 1, 1000},
      {"audit", "syslog_url", member(&Config::audit, &AuditConfig::syslog_url)},
      {"audit", "syslog_ca_file", member(&Config::audit, &AuditConfig::syslog_ca_file)},
      {"audit", "syslog_app_name", member(&Config::audit, &AuditConfig::syslog_app_name)},
      {"jobs", "embedded", member(&Config::jobs, &JobsConfig::embedded)},
      {"jobs", "queue_url", member(&Config::jobs, &JobsConfig::queue_url), 0, 0, true},
      {"jobs", "queue_prefix", member(&Config::jobs, &JobsConfig::queue_prefix)},
      {"jobs", "concurrency", member(&Config::jobs, &JobsConfig::concurrency)},
      {"jobs", "lease_ms", member(&Config::jobs, &JobsConfig::lease_ms), 1000, 86'400'000},
      {"jobs", "poll_interval_ms", member(&Config::jobs, &JobsConfig::poll_interval_ms), 10, 60'000},
      {"jobs", "backoff_base_ms", member(&Config::jobs, &JobsConfig::backoff_base_ms), 1, 3'600'000},
      {"jobs", "backoff_max_ms", member(&Config::jobs, &JobsConfig::backoff_max_ms), 1, 7LL * 86'400'000},
      {"jobs", "shutdown_grace_ms", member(&Config::jobs, &JobsConfig::shutdown_grace_ms), 0, 3'600'000},
      {"jobs", "relay_interval_ms", member(&Config::jobs, &JobsConfig::relay_interval_ms), 10, 3'600'000},
      {"jobs", "retain_done_hours", member(&Config::jobs, &JobsConfig::retain_done_hours), 1, 24 * 3650},
      {"jobs", "retain_dead_days", member(&Config::jobs, &JobsConfig::retain_dead_days), 1, 3650},
      {"jobs", "idempotency_key_hours", member(&Config::jobs, &JobsConfig::idempotency_key_hours), 1, 24 * 365},
      {"jobs", "retain_reports_days", member(&Config::jobs, &JobsConfig::retain_reports_days), 1, 3650},
      {"jobs", "time_zone", member(&Config::jobs, &JobsConfig::time_zone)},
      {"jobs", "cleanup_cron", member(&Config::jobs, &JobsConfig::cleanup_cron)},
      {"jobs", "heartbeat_cron", member(&Config::jobs, &JobsConfig::heartbeat_cron)},
      {"jobs", "worker_listen", member(&Config::jobs, &JobsConfig::worker_listen)},
      {"webhooks", "retry_schedule", member(&Config::webhooks, &WebhooksConfig::retry_schedule)},
      {"webhooks", "allow_private_targets", member(&Config::webhooks, &WebhooksConfig::allow_private_targets)},
      {"webhooks", "timeout_ms", member(&Config::webhooks, &WebhooksConfig::timeout_ms), 100, 120'000},
      {"webhooks", "retain_deliveries_days", member(&Config::webhooks, &WebhooksConfig::retain_deliveries_days), 1,
       3650},
      {"webhooks", "platform_url", member(&Config::webhooks, &WebhooksConfig::platform_url)},
      {"webhooks", "platform_secret", member(&Config::webhooks, &WebhooksConfig::platform_secret), 0, 0, true},
      {"email", "smtp_url", member(&Config::email, &EmailConfig::smtp_url), 0, 0, true},
      {"email", "smtp_username", member(&Config::email, &EmailConfig::smtp_username)},
      {"email", "smtp_password", member(&Config::email, &EmailConfig::smtp_password), 0, 0, true},
      {"email", "smtp_starttls", member(&Config::email, &EmailConfig::smtp_starttls)},
      {"email", "from", member(&Config::email, &EmailConfig::from)},
      {"billing", "gateway", member(&Config::billing, &BillingConfig::gateway)},
      {"billing", "downgrade_credit", member(&Config::billing, &BillingConfig::downgrade_credit)},
      {"billing", "run_cron", member(&Config::billing, &BillingConfig::run_cron)},
      {"billing", "run_batch", member(&Config::billing, &BillingConfig::run_batch), 1, 100'000},
      {"billing", "days_until_due", member(&Config::billing, &BillingConfig::days_until_due), 0, 365},
      {"billing", "retain_invoices_years", member(&Config::billing, &BillingConfig::retain_invoices_years), 1, 100},
      {"billing", "issuer_name", member(&Config::billing, &BillingConfig::issuer_name)},
      {"billing", "issuer_email", member(&Config::billing, &BillingConfig::issuer_email)},
      {"billing", "issuer_address", member(&Config::billing, &BillingConfig::issuer_address)},
      {"billing", "issuer_country", member(&Config::billing, &BillingConfig::issuer_country)},
      {"billing", "issuer_tax_id", member(&Config::billing, &BillingConfig::issuer_tax_id)},
      {"metering", "retain_events_days", member(&Config::metering, &MeteringConfig::retain_events_days), 35, 36'500},
      {"metering", "max_event_age_hours", member(&Config::metering, &MeteringConfig::max_event_age_hours), 1,
       36'500LL * 24},
      {"metering", "max_future_seconds", member(&Config::metering, &MeteringConfig::max_future_seconds), 0, 86'400},
      {"gateway", "default_requests_per_second", member(&Config::gateway, &GatewayConfig::default_requests_per_second),
       0, 1'000'000},
      {"gateway", "default_burst", member(&Config::gateway, &GatewayConfig::default_burst), 0, 1'000'000},
      {"gateway", "api_key_requests_per_second", member(&Config::gateway, &GatewayConfig::api_key_requests_per_second),
       0, 1'000'000},
      {"gateway", "api_key_burst", member(&Config::gateway, &GatewayConfig::api_key_burst), 0, 1'000'000},
      {"gateway", "plan_cache_ttl_ms", member(&Config::gateway, &GatewayConfig::plan_cache_ttl_ms), 0, 3'600'000},
      {"gateway", "redis_url", member(&Config::gateway, &GatewayConfig::redis_url), 0, 0, true},
      {"gateway", "redis_timeout_ms", member(&Config::gateway, &GatewayConfig::redis_timeout_ms), 1, 60'000},
      {"gateway", "rate_limit_fail_open", member(&Config::gateway, &GatewayConfig::rate_limit_fail_open)},
      {"gateway", "max_keys", member(&Config::gateway, &GatewayConfig::max_keys), 64, 100'000'000},
      {"gateway", "version_docs_url", member(&Config::gateway, &GatewayConfig::version_docs_url)},
      {"gateway", "count_api_calls", member(&Config::gateway, &GatewayConfig::count_api_calls)},
      {"gateway", "api_calls_report_ms", member(&Config::gateway, &GatewayConfig::api_calls_report_ms), 100, 3'600'000},
      {"analytics", "activity_flush_ms", member(&Config::analytics, &AnalyticsConfig::activity_flush_ms), 100, 600'000},
      {"analytics", "realtime_minutes", member(&Config::analytics, &AnalyticsConfig::realtime_minutes), 1, 1'440},
      {"analytics", "redis_url", member(&Config::analytics, &AnalyticsConfig::redis_url), 0, 0, true},
      {"analytics", "realtime_flush_ms", member(&Config::analytics, &AnalyticsConfig::realtime_flush_ms), 100, 60'000},
      {"analytics", "business_metrics_ms", member(&Config::analytics, &AnalyticsConfig::business_metrics_ms), 1'000,
       3'600'000},
      {"analytics", "etl_lookback_days", member(&Config::analytics, &AnalyticsConfig::etl_lookback_days), 0, 90},
      {"analytics", "etl_cron", member(&Config::analytics, &AnalyticsConfig::etl_cron)},
      {"analytics", "warehouse_url", member(&Config::analytics, &AnalyticsConfig::warehouse_url), 0, 0, true},
      {"analytics", "warehouse_reader_role", member(&Config::analytics, &AnalyticsConfig::warehouse_reader_role)},
      {"churn", "score_cron", member(&Config::churn, &ChurnConfig::score_cron)},
      {"churn", "threads", member(&Config::churn, &ChurnConfig::threads), 0, 256},
      {"proxy", "routes_file", member(&Config::proxy, &ProxyConfig::routes_file)},
      {"proxy", "token_audience", member(&Config::proxy, &ProxyConfig::token_audience)},
      {"proxy", "token_ttl_s", member(&Config::proxy, &ProxyConfig::token_ttl_s), 10, 3600},
      {"proxy", "max_idle_per_endpoint", member(&Config::proxy, &ProxyConfig::max_idle_per_endpoint), 0, 100'000},
      {"proxy", "pool_idle_timeout_ms", member(&Config::proxy, &ProxyConfig::pool_idle_timeout_ms), 100, 3'600'000},
      {"protection", "encrypt_fields", member(&Config::protection, &ProtectionConfig::encrypt_fields)},
      {"protection", "key_provider", member(&Config::protection, &ProtectionConfig::key_provider)},
      {"protection", "key_directory", member(&Config::protection, &ProtectionConfig::key_directory)},
      {"protection", "key_cache_ttl_ms", member(&Config::protection, &ProtectionConfig::key_cache_ttl_ms), 0,
       86'400'000},
      {"protection", "key_cache_tenants", member(&Config::protection, &ProtectionConfig::key_cache_tenants), 1,
       10'000'000},
      {"metrics", "tenant_label", member(&Config::metrics, &MetricsConfig::tenant_label)},
      {"metrics", "tenant_label_limit", member(&Config::metrics, &MetricsConfig::tenant_label_limit), 1, 10'000},
      {"log", "level", member(&Config::log, &LogConfig::level)},
      {"log", "format", member(&Config::log, &LogConfig::format)},
      {"log", "access_log", member(&Config::log, &LogConfig::access_log)},
  };
  return k;
}

const Key* find_key(std::string_view section, std::string_view name) {
  for (const Key& k : keys()) {
    if (k.section == section && k.name == name) return &k;
  }
  return nullptr;
}

bool known_section(std::string_view section) {
  for (const Key& k : keys()) {
    if (k.section == section) return true;
  }
  return false;
}

std::string qualified(const Key& k) { return fmt::format("{}.{}", k.section, k.name); }

Result<void> check_range(const Key& k, std::int64_t v, std::string_view source) {
  if (v < k.min || v > k.max) {
    return fail(Errc::invalid_argument,
                fmt::format("{} ({}): {} is out of range [{}, {}]", qualified(k), source, v, k.min, k.max));
  }
  return {};
}

// Sets a key from text (environment variables and flags).
Result<void> set_from_text(Config& config, const Key& k, std::string_view text, std::string_view source) {
  Ref ref = k.ref(config);
  if (auto* s = std::get_if<std::string*>(&ref)) {
    **s = std::string(text);
    return {};
  }
  if (auto* i = std::get_if<std::int64_t*>(&ref)) {
    std::int64_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
      return fail(Errc::invalid_argument,
                  fmt::format("{} ({}): expected an integer, got \"{}\"", qualified(k), source, text));
    }
    if (auto r = check_range(k, v, source); !r) return r;
    **i = v;
    return {};
  }
  bool* b = std::get<bool*>(ref);
  if (text == "true" || text == "1" || text == "yes" || text == "on") {
    *b = true;
  } else if (text == "false" || text == "0" || text == "no" || text == "off") {
    *b = false;
  } else {
    return fail(Errc::invalid_argument,
                fmt::format("{} ({}): expected true or false, got \"{}\"", qualified(k), source, text));
  }
  return {};
}

Result<void> set_from_toml(Config& config, const Key& k, const toml::node& node, std::string_view source) {
  Ref ref = k.ref(config);
  if (auto* s = std::get_if<std::string*>(&ref)) {
    if (!node.is_string())
      return fail(Errc::invalid_argument, fmt::format("{} ({}): expected a string", qualified(k), source));
    **s = *node.value<std::string>();
    return {};
  }
  if (auto* i = std::get_if<std::int64_t*>(&ref)) {
    if (!node.is_integer())
      return fail(Errc::invalid_argument, fmt::format("{} ({}): expected an integer", qualified(k), source));
    const std::int64_t v = *node.value<std::int64_t>();
    if (auto r = check_range(k, v, source); !r) return r;
    **i = v;
    return {};
  }
  if (!node.is_boolean())
    return fail(Errc::invalid_argument, fmt::format("{} ({}): expected true or false", qualified(k), source));
  *std::get<bool*>(ref) = *node.value<bool>();
  return {};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

Result<void> apply_toml(Config& config, const std::string& path) {
  std::ifstream probe(path);
  if (!probe) return fail(Errc::invalid_argument, fmt::format("config file {}: cannot be read", path));
  toml::table root;
  try {
    root = toml::parse_file(path);  // start-up only: the one place exceptions are fine
  } catch (const toml::parse_error& err) {
    return fail(Errc::invalid_argument, fmt::format("config file {}:{}:{}: {}", path, err.source().begin.line,
                                                    err.source().begin.column, err.description()));
  }
  for (const auto& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    if (!known_section(section)) {
      return fail(Errc::invalid_argument, fmt::format("config file {}: unknown section [{}]", path, section));
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      return fail(Errc::invalid_argument, fmt::format("config file {}: {} must be a table", path, section));
    }
    for (const auto& [name_key, value] : *table) {
      const Key* k = find_key(section, name_key.str());
      if (k == nullptr) {
        return fail(Errc::invalid_argument,
                    fmt::format("config file {}: unknown key {}.{}", path, section, name_key.str()));
      }
      if (auto r = set_from_toml(config, *k, value, path); !r) return r;
    }
  }
  return {};
}

Result<void> apply_environment(Config& config, const std::vector<std::string>& environment) {
  constexpr std::string_view prefix = "ATRIUM_";
  for (const std::string& entry : environment) {
    if (entry.rfind(prefix, 0) != 0) continue;
    const auto eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = entry.substr(0, eq);
    const std::string rest = lower(std::string_view(name).substr(prefix.size()));
    const auto us = rest.find('_');
    if (us == std::string::npos) continue;
    const std::string section = rest.substr(0, us);
    if (!known_section(section)) continue;  // ATRIUM_TEST_... and similar belong to other tools
    const Key* k = find_key(section, rest.substr(us + 1));
    if (k == nullptr) {
      return fail(Errc::invalid_argument,
                  fmt::format("environment variable {}: unknown key {}.{}", name, section, rest.substr(us + 1)));
    }
    if (auto r = set_from_text(config, *k, std::string_view(entry).substr(eq + 1), name); !r) return r;
  }
  return {};
}

}  // namespace

Result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& listen) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return fail(Errc::invalid_argument, fmt::format("server.listen: \"{}\" is not [IPv6]:PORT", listen));
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return fail(Errc::invalid_argument, fmt::format("server.listen: \"{}\" is not HOST:PORT", listen));
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  // A host name or IPv4 address; an IPv6 address only in brackets (so the last ':' is the port's).
  const bool bracketed = listen.front() == '[';
  const bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || (bracketed && (c == ':' || c == '%'));
  });
  if (!host_ok) {
    return fail(Errc::invalid_argument,
                fmt::format("server.listen: \"{}\" has no valid host (a name, an IPv4 address or [IPv6])", listen));
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || port.empty() || value > 65535) {
    return fail(Errc::invalid_argument, fmt::format("server.listen: \"{}\" has no valid port", listen));
  }
  return std::make_pair(host, static_cast<std::uint16_t>(value));
}

Result<Config> load_config(const std::string& toml_path, const std::vector<std::string>& environment,
                           const ConfigOverrides& overrides) {
  Config config;
  if (!toml_path.empty()) {
    if (auto r = apply_toml(config, toml_path); !r) return std::unexpected(r.error());
  }
  if (auto r = apply_environment(config, environment); !r) return std::unexpected(r.error());
  for (const auto& [qualified_name, text] : overrides) {
    const auto dot = qualified_name.find('.');
    const Key* k = dot == std::string::npos ? nullptr
                                            : find_key(std::string_view(qualified_name).substr(0, dot),
                                                       std::string_view(qualified_name).substr(dot + 1));
    if (k == nullptr) return fail(Errc::invalid_argument, fmt::format("unknown key {}", qualified_name));
    if (auto r = set_from_text(config, *k, text, "command line"); !r) return std::unexpected(r.error());
  }
  if (auto r = validate_config(config); !r) return std::unexpected(r.error());
  return config;
}

bool is_origin(std::string_view text) {
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) return false;
  const std::string_view scheme = text.substr(0, scheme_end);
  const std::string_view host = text.substr(scheme_end + 3);
  return (scheme == "http" || scheme == "https") && !host.empty() && text.size() <= 253 + 14 &&
         host.find_first_of("/?#@ \t\r\n") == std::string_view::npos;
}

Result<std::vector<std::string>> parse_cors_origins(const std::string& text) {
  std::vector<std::string> origins;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    if (item != "*" && !is_origin(item)) {
      return fail(Errc::invalid_argument,
                  fmt::format("server.cors_origins: \"{}\" is not an origin (scheme://host[:port]) or *", item));
    }
    origins.emplace_back(item);
  }
  if (origins.size() > 1 && std::find(origins.begin(), origins.end(), "*") != origins.end()) {
    return fail(Errc::invalid_argument, "server.cors_origins: \"*\" stands alone");
  }
  return origins;
}

Result<void> validate_config(const Config& c) {
  if (auto r = parse_listen(c.server.listen); !r) return std::unexpected(r.error());
  if (!c.jobs.worker_listen.empty()) {
    if (auto r = parse_listen(c.jobs.worker_listen); !r) {
      return fail(Errc::invalid_argument, "jobs.worker_listen: " + r.error().message);
    }
  }
  if (c.server.tls_cert.empty() != c.server.tls_key.empty()) {
    return fail(Errc::invalid_argument, "server.tls_cert and server.tls_key must be given together");
  }
  for (const auto& [name, path] :
       {std::pair{"server.tls_cert", c.server.tls_cert}, std::pair{"server.tls_key", c.server.tls_key}}) {
    if (!path.empty() && !std::ifstream(path)) {
      return fail(Errc::invalid_argument, fmt::format("{}: {} cannot be read", name, path));
    }
  }
  if (auto r = parse_cors_origins(c.server.cors_origins); !r) return std::unexpected(r.error());
  if (c.storage.data_dir.empty()) return fail(Errc::invalid_argument, "storage.data_dir: must not be empty");
  // A retry of an event whose row retention deleted must be too old to be accepted, or it would count twice.
  if (c.metering.max_event_age_hours > c.metering.retain_events_days * 24) {
    return fail(Errc::invalid_argument,
                "metering.max_event_age_hours must not exceed metering.retain_events_days * 24 (deduplication)");
  }
  const std::string& url = c.storage.database_url;
  if (!url.empty() && url.rfind("postgresql://", 0) != 0 && url.rfind("postgres://", 0) != 0 &&
      url.rfind("sqlite:", 0) != 0) {
    return fail(Errc::invalid_argument,
                "storage.database_url: expected postgresql://..., postgres://... or sqlite:PATH");
  }
  if (!c.storage.admin_database_url.empty() && c.storage.admin_database_url.rfind("postgres", 0) != 0) {
    return fail(Errc::invalid_argument, "storage.admin_database_url: only PostgreSQL URLs have an owner role");
  }
  if (c.identity.jwt_algorithm != "RS256" && c.identity.jwt_algorithm != "ES256" &&
      c.identity.jwt_algorithm != "EdDSA") {
    return fail(Errc::invalid_argument, "identity.jwt_algorithm: expected RS256, ES256 or EdDSA");
  }
  if (c.identity.password_cost != "interactive" && c.identity.password_cost != "moderate" &&
      c.identity.password_cost != "minimum") {
    return fail(Errc::invalid_argument, "identity.password_cost: expected interactive, moderate or minimum");
  }
  if (c.identity.issuer.empty() || c.identity.audience.empty()) {
    return fail(Errc::invalid_argument, "identity.issuer and identity.audience must not be empty");
  }
  if (c.protection.key_provider != "local") {
    return fail(Errc::invalid_argument, "protection.key_provider: only \"local\" is built");
  }
  if (c.proxy.token_audience.empty() || c.proxy.token_audience == c.identity.audience) {
    // An upstream's identity token must never pass as an access token to Atrium's own API.
    return fail(Errc::invalid_argument, "proxy.token_audience: must be set and differ from identity.audience");
  }
  const std::string& wh = c.analytics.warehouse_url;
  if (!wh.empty() && wh.rfind("postgresql://", 0) != 0 && wh.rfind("postgres://", 0) != 0 &&
      wh.rfind("sqlite:", 0) != 0) {
    return fail(Errc::invalid_argument,
                "analytics.warehouse_url: expected postgresql://..., postgres://... or sqlite:PATH");
  }
  if (!c.analytics.warehouse_reader_role.empty() && wh.rfind("postgres", 0) != 0) {
    return fail(Errc::invalid_argument, "analytics.warehouse_reader_role: needs a PostgreSQL analytics.warehouse_url");
  }
  if (!c.identity.redis_url.empty() && c.identity.redis_url.rfind("redis://", 0) != 0) {
    return fail(Errc::invalid_argument, "identity.redis_url: expected redis://host:port[/db]");
  }
  if (!c.gateway.redis_url.empty() && c.gateway.redis_url.rfind("redis://", 0) != 0) {
    return fail(Errc::invalid_argument, "gateway.redis_url: expected redis://host:port[/db]");
  }
  if (!c.analytics.redis_url.empty() && c.analytics.redis_url.rfind("redis://", 0) != 0) {
    return fail(Errc::invalid_argument, "analytics.redis_url: expected redis://host:port[/db]");
  }
  if (c.gateway.version_docs_url.empty() ||
      std::any_of(c.gateway.version_docs_url.begin(), c.gateway.version_docs_url.end(), [](char ch) {
        return static_cast<unsigned char>(ch) <= 0x20 || ch == '<' || ch == '>' || ch == 0x7f;
      })) {
    return fail(Errc::invalid_argument, "gateway.version_docs_url: expected a URI reference without spaces or <>");
  }
  if (c.tenancy.default_isolation != "shared" && c.tenancy.default_isolation != "schema" &&
      c.tenancy.default_isolation != "database") {
    return fail(Errc::invalid_argument, "tenancy.default_isolation: expected shared, schema or database");
  }
  if (!c.audit.syslog_url.empty() && c.audit.syslog_url.rfind("udp://", 0) != 0 &&
      c.audit.syslog_url.rfind("tcp://", 0) != 0 && c.audit.syslog_url.rfind("tls://", 0) != 0) {
    return fail(Errc::invalid_argument, "audit.syslog_url: expected udp://, tcp:// or tls://host:port");
  }
  if (!c.jobs.queue_url.empty() && c.jobs.queue_url.rfind("amqp://", 0) != 0 &&
      c.jobs.queue_url.rfind("amqps://", 0) != 0) {
    return fail(Errc::invalid_argument, "jobs.queue_url: expected amqp://user:password@host:port/vhost");
  }
  if (!c.email.smtp_url.empty() && c.email.smtp_url.rfind("smtp://", 0) != 0 &&
      c.email.smtp_url.rfind("smtps://", 0) != 0) {
    return fail(Errc::invalid_argument, "email.smtp_url: expected smtp://host:port or smtps://host:port");
  }
  static constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), c.log.level) == std::end(levels)) {
    return fail(Errc::invalid_argument, fmt::format("log.level: \"{}\" is not one of trace, debug, info, warn, "
                                                    "error, critical, off",
                                                    c.log.level));
  }
  if (c.log.format != "json" && c.log.format != "text") {
    return fail(Errc::invalid_argument, fmt::format("log.format: \"{}\" is not json or text", c.log.format));
  }
  return {};
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  // userinfo password: scheme://user:password@host
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto at = out.find('@', scheme + 3);
    const auto slash = out.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const auto colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // password=... in the query string
  for (auto pos = out.find("password="); pos != std::string::npos; pos = out.find("password=", pos + 1)) {
    const auto start = pos + 9;
    const auto end = out.find('&', start);
    out.replace(start, (end == std::string::npos ? out.size() : end) - start, "***");
  }
  return out;
}

std::string render_config(const Config& config) {
  Config copy = config;
  std::string out;
  for (const Key& k : keys()) {
    Ref ref = k.ref(copy);
    std::string value;
    if (auto* s = std::get_if<std::string*>(&ref)) {
      std::string text = !k.secret ? **s : (k.name.ends_with("url") ? redact_url(**s) : (**s).empty() ? "" : "***");
      value = "\"";
      for (char ch : text) {
        if (ch == '"' || ch == '\\') value.push_back('\\');
        value.push_back(ch);
      }
      value.push_back('"');
    } else if (auto* i = std::get_if<std::int64_t*>(&ref)) {
      value = std::to_string(**i);
    } else {
      value = *std::get<bool*>(ref) ? "true" : "false";
    }
    out += fmt::format("{}.{} = {}\n", k.section, k.name, value);
  }
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const Key& k : keys()) out.push_back(qualified(k));
  return out;
}

}  // namespace atrium
