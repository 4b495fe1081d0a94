#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "analytics/analytics.hpp"
#include "analytics/business_metrics.hpp"
#include "api/routes.hpp"
#include "app/app.hpp"
#include "app/background.hpp"
#include "app/demo.hpp"
#include "app/dispatch.hpp"
#include "app/ops_metrics.hpp"
#include "app/platform.hpp"
#include "app/tenant_archive.hpp"
#include "app/tenant_move.hpp"
#include "audit/audit_log.hpp"
#include "billing/billing.hpp"
#include "churn/service.hpp"
#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/log.hpp"
#include "core/periodic.hpp"
#include "domains/domains.hpp"
#include "gateway/api_calls.hpp"
#include "http/dispatcher.hpp"
#include "http/middleware.hpp"
#include "http/server.hpp"
#include "identity/jwt.hpp"
#include "identity/key_store.hpp"
#include "identity/user_store.hpp"
#include "ml/dataset.hpp"
#include "ml/ensemble.hpp"
#include "observability/metrics.hpp"
#include "privacy/personal_data.hpp"
#include "protection/archive_file.hpp"
#include "protection/keyring.hpp"
#include "proxy/gateway.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"
#include "tenancy/tenant.hpp"
#include "warehouse/warehouse.hpp"

namespace atrium::app {

namespace {

Result<Config> load(const CommonOptions& o) {
  ConfigOverrides overrides;
  if (!o.listen.empty()) overrides["server.listen"] = o.listen;
  if (!o.data_dir.empty()) overrides["storage.data_dir"] = o.data_dir;
  if (!o.database_url.empty()) overrides["storage.database_url"] = o.database_url;
  if (!o.tls_cert.empty()) overrides["server.tls_cert"] = o.tls_cert;
  if (!o.tls_key.empty()) overrides["server.tls_key"] = o.tls_key;
  return load_config(o.config_path, o.environment, overrides);
}

void init_logging(const Config& config) {
  log::Level level = log::Level::info;
  log::parse_level(config.log.level, &level);
  log::init(level, config.log.format == "json");
}

// A progress bar on stderr, drawn only when stderr is a terminal (never into a log file or pipe, where the lines
// would mix with JSON logs).
void draw_progress(std::string_view label, std::int64_t done, std::int64_t total, std::string_view unit) {
  static const bool terminal = ::isatty(STDERR_FILENO) == 1;
  if (!terminal) return;
  const int width = 40;
  const auto filled = total == 0 ? width : static_cast<int>(done * width / total);
  std::cerr << "\r" << label << " [" << std::string(static_cast<std::size_t>(filled), '#')
            << std::string(static_cast<std::size_t>(width - filled), ' ') << "] " << done << "/" << total << unit
            << (done == total ? "\n" : "") << std::flush;
}

// Progress of long per-tenant runs (schema and database isolation).
void tenant_progress(int done, int total) { draw_progress("migrating tenants", done, total, ""); }

Result<std::unique_ptr<app::Platform>> open_platform(const Config& config, bool migrate, bool background = false) {
  app::Platform::Options options;
  options.migrate = migrate;
  options.background = background;
  options.on_tenant_migrated = tenant_progress;
  return app::Platform::open(config, SystemClock::instance(), options);
}

int config_error(const Error& e) {
  std::cerr << "atrium: configuration error: " << e.message << "\n";
  return 2;
}

}  // namespace

std::string version_text() {
  const BuildInfo& b = build_info();
  return fmt::format("atrium {} (revision {}, {}, {})", b.version, b.revision, b.compiler, b.build_type);
}

int version_command() {
  std::cout << version_text() << "\n";
  return 0;
}

Result<std::string> read_password(const std::string& path) {
  std::string line;
  if (path == "-") {
    std::getline(std::cin, line);
  } else {
    std::ifstream in(path);
    if (!in) return fail(Errc::invalid_argument, "cannot read the password file " + path);
    std::getline(in, line);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return fail(Errc::invalid_argument, "the password file's first line is empty");
  return line;
}

int config_check_command(const CommonOptions& options) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  std::cout << render_config(*config);
  return 0;
}

int migrate_command(const CommonOptions& options) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  auto platform = open_platform(*config, /*migrate=*/false);
  if (!platform) {
    log::error("cannot open the database", {{"error", platform.error().message}});
    return 1;
  }
  auto applied = (*platform)->migrate_all(tenant_progress);
  if (!applied) {
    log::error("migration failed", {{"error", applied.error().message}});
    return 1;
  }
  storage::Database& db = (*platform)->admin_db();
  auto status = storage::migration_status(db, storage::builtin_migrations(db.backend()));
  std::cout << fmt::format("applied {} migration(s); schema version {}\n", *applied, status ? status->current : -1);
  return 0;
}

// Every 30 s, closes the tenants' own pools unused for a minute (tenancy::TenantData::close_idle_pools).
static std::unique_ptr<Periodic> close_idle_tenant_pools(app::Platform& platform) {
  auto p = std::make_unique<Periodic>([&platform] { platform.tenant_data->close_idle_pools(std::chrono::minutes(1)); },
                                      std::chrono::seconds(30));
  p->start();
  return p;
}

// Loads the configuration, opens the platform (migrating when storage.migrate_on_start) and runs `command`.
static int with_platform(const CommonOptions& options,
                         const std::function<int(app::Platform&, const Config&)>& command) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  auto platform = open_platform(*config, config->storage.migrate_on_start);
  if (!platform) {
    log::error("cannot open the platform", {{"error", platform.error().message}});
    return 1;
  }
  return command(**platform, *config);
}

namespace {
const audit::Context k_cli{.actor_type = audit::ActorType::system, .actor_id = "cli", .user_agent = "atrium-cli"};
}  // namespace

int create_superuser_command(const CommonOptions& options, const std::string& email, const std::string& password) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto user = platform.users->create_user(email, "", password, /*super_admin=*/true, platform.audit->recorder(k_cli));
    if (!user) {
      std::cerr << "atrium: " << user.error().message << "\n";
      return user.error().code == Errc::invalid_argument || user.error().code == Errc::unique_violation ? 2 : 1;
    }
    std::cout << fmt::format("super admin {} created ({})\n", user->email, user->id);
    return 0;
  });
}

int rotate_keys_command(const CommonOptions& options, const std::string& algorithm) {
  // Refused before anything is opened: a bad flag creates no data directory, no database and no key.
  if (!algorithm.empty() && !identity::parse_jwt_alg(algorithm)) {
    std::cerr << "atrium: --algorithm must be RS256, ES256 or EdDSA\n";
    return 2;
  }
  return with_platform(options, [&](app::Platform& platform, const Config& config) {
    auto alg = algorithm.empty()
                   ? Result<identity::JwtAlgorithm>(identity::configured_jwt_alg(config.identity.jwt_algorithm))
                   : identity::parse_jwt_alg(algorithm);
    if (!alg) return 2;
    auto kid = platform.keys->rotate(*alg, platform.audit->recorder(k_cli));
    if (!kid) {
      log::error("key rotation failed", {{"error", kid.error().message}});
      return 1;
    }
    std::cout << fmt::format("new signing key {} ({}); previous keys verify until their tokens expire\n", *kid,
                             identity::jwt_alg_name(*alg));
    return 0;
  });
}

namespace {

// The tenants a key command works on: the one named, or every tenant not deleted.
Result<std::vector<tenancy::Tenant>> key_command_tenants(app::Platform& platform, const std::string& tenant) {
  std::vector<tenancy::Tenant> out;
  if (!tenant.empty()) {
    auto t = platform.tenants->get(tenant);
    if (!t) return std::unexpected(t.error());
    out.push_back(std::move(*t));
    return out;
  }
  std::optional<std::string> after;
  for (;;) {
    auto page = platform.tenants->list(after, 500);
    if (!page) return std::unexpected(page.error());
    for (auto& t : page->tenants) {
      if (t.status != tenancy::TenantStatus::deleted) out.push_back(std::move(t));
    }
    if (!page->next_cursor) return out;
    after = page->next_cursor;
  }
}

// When the last of the tenant's data keys retired (none: nothing retired).
Result<std::optional<Instant>> last_retirement(app::Platform& platform, const std::string& tenant_id) {
  auto keys = platform.keyring->keys(tenant_id);
  if (!keys) return std::unexpected(keys.error());
  std::optional<Instant> last;
  for (const auto& k : *keys) {
    if (k.retired_at && (!last || *k.retired_at > *last)) last = k.retired_at;
  }
  return last;
}

// Data-key rotation (with `rotate`) and re-encryption for `tenants`: a new data key each (when rotating), a pass
// re-encrypting every field under it, then — once no instance can still seal with a retired key
// (protection.key_cache_ttl_ms after the last retirement, waited once for all tenants) — a final pass catching what
// concurrent writers sealed meanwhile, and the retired keys dropped. Prints a line per tenant.
int reencrypt_tenants(app::Platform& platform, const std::vector<tenancy::Tenant>& tenants, bool rotate, bool quiet) {
  const auto columns = app::Platform::sealed_columns();
  auto failed = [](const tenancy::Tenant& t, const Error& e) {
    log::error("key command failed", {{"tenant", t.id}, {"error", e.message}});
    return 1;
  };
  std::vector<protection::ReencryptSummary> summaries;
  std::optional<Instant> safe;  // when every retired key is out of every instance's cache
  for (std::size_t i = 0; i < tenants.size(); ++i) {
    const auto& t = tenants[i];
    if (rotate) {
      if (auto v = platform.keyring->rotate_data_key(t.id); !v) return failed(t, v.error());
    }
    auto pass = protection::reencrypt(*platform.tenant_data, *platform.keyring, t, columns);
    if (!pass) return failed(t, pass.error());
    summaries.push_back(*pass);
    auto last = last_retirement(platform, t.id);
    if (!last) return failed(t, last.error());
    if (*last && (!safe || **last + platform.keyring->cache_ttl() > *safe)) {
      safe = **last + platform.keyring->cache_ttl();
    }
    if (!quiet) draw_progress("re-encrypting", static_cast<std::int64_t>(i + 1), std::ssize(tenants), " tenants");
  }
  if (safe && platform.clock().now() < *safe) {
    if (!quiet) std::cerr << "waiting for every instance to stop sealing with the retired keys\n";
    std::this_thread::sleep_for(*safe - platform.clock().now());
  }
  for (std::size_t i = 0; i < tenants.size(); ++i) {
    const auto& t = tenants[i];
    auto last = last_retirement(platform, t.id);
    if (!last) return failed(t, last.error());
    if (*last) {
      auto final_pass = protection::reencrypt(*platform.tenant_data, *platform.keyring, t, columns);
      if (!final_pass) return failed(t, final_pass.error());
      if (final_pass->old_versions_left != 0) {
        return failed(t, {Errc::conflict, "values changed during re-encryption; run it again"});
      }
      if (auto d = platform.keyring->drop_retired(t.id); !d) return failed(t, d.error());
      summaries[i].examined += final_pass->examined;
      summaries[i].resealed += final_pass->resealed;
    }
    auto active = platform.keyring->active_version(t.id);
    if (!active) return failed(t, active.error());
    std::cout << fmt::format("{}: {} value(s) examined, {} re-encrypted under data key {}\n", t.id,
                             summaries[i].examined, summaries[i].resealed, *active);
  }
  return 0;
}

}  // namespace

int key_command(const CommonOptions& options, KeyCommand command, const std::string& tenant, bool quiet) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto tenants = key_command_tenants(platform, tenant);
    if (!tenants) {
      log::error("cannot list the tenants", {{"error", tenants.error().message}});
      return tenants.error().code == Errc::not_found ? 2 : 1;
    }
    if (command == KeyCommand::rotate_data_key || command == KeyCommand::reencrypt) {
      return reencrypt_tenants(platform, *tenants, command == KeyCommand::rotate_data_key, quiet);
    }
    for (std::size_t i = 0; i < tenants->size(); ++i) {
      const auto& t = (*tenants)[i];
      if (command == KeyCommand::list) {
        auto keys = platform.keyring->keys(t.id);
        if (!keys) {
          log::error("key command failed", {{"tenant", t.id}, {"error", keys.error().message}});
          return 1;
        }
        for (const auto& k : *keys) {
          std::cout << fmt::format("{} data key {} {} (key-encryption key version {}, created {})\n", t.id, k.version,
                                   k.state, k.kek_version, format_rfc3339(k.created_at));
        }
        continue;
      }
      auto v = platform.keyring->rotate_kek(t.id);
      if (!v) {
        log::error("key command failed", {{"tenant", t.id}, {"error", v.error().message}});
        return 1;
      }
      std::cout << fmt::format("{}: data keys re-wrapped under key-encryption key version {}\n", t.id, *v);
      if (!quiet) draw_progress("re-wrapping", static_cast<std::int64_t>(i + 1), std::ssize(*tenants), " tenants");
    }
    return 0;
  });
}

int serve_command(const CommonOptions& options) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  ::signal(SIGPIPE, SIG_IGN);

  auto opened = open_platform(*config, config->storage.migrate_on_start, true);
  if (!opened) {
    log::error("cannot start", {{"error", opened.error().message}});
    return 1;
  }
  app::Platform& platform = **opened;
  if (auto started = platform.start_audit_services(); !started) {
    log::error("cannot start", {{"error", started.error().message}});
    return 1;
  }
  if (config->jobs.embedded) {
    if (auto started = platform.workers()->start_workers(); !started) {
      log::error("cannot start the background workers", {{"error", started.error().message}});
      return 1;
    }
  }

  metrics::Registry& registry = platform.registry;
  metrics::register_process_collector(registry);
  const BuildInfo& build = build_info();
  registry.gauge("atrium_build_info", "Build information; the value is always 1.", {"version", "revision", "compiler"})
      .with({std::string(build.version), std::string(build.revision), std::string(build.compiler)})
      .set(1);
  http::TenantLabel tenant_label{.limit = static_cast<std::size_t>(config->metrics.tenant_label_limit)};
  if (config->metrics.tenant_label) {
    tenant_label.tenant_of = [](const http::Request& req) { return req.tenant ? req.tenant->id : std::string(); };
  }
  http::HttpMetrics http_metrics(registry, std::move(tenant_label));
  register_ops_metrics(platform, registry, config->server.tls_cert);

  auto dispatcher = make_dispatcher(platform, {.metrics = &http_metrics, .access_log = config->log.access_log});
  if (platform.api_calls) platform.api_calls->start();
  platform.analytics->start();
  analytics::BusinessMetrics business_metrics(*platform.tenant_data, registry,
                                              std::chrono::milliseconds(config->analytics.business_metrics_ms));
  business_metrics.start();
  // The churn gauges follow the latest daily batch wherever it ran (`atrium worker` too), read as often.
  Periodic churn_gauges(
      [&platform] {
        if (auto r = platform.churn->refresh_gauges(); !r) {
          log::warn("churn gauges not refreshed", {{"error", r.error().message}});
        }
      },
      std::chrono::milliseconds(config->analytics.business_metrics_ms));
  churn_gauges.start();
  churn_gauges.wake();
  const auto idle_pools = close_idle_tenant_pools(platform);

  const auto listen = parse_listen(config->server.listen);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  http::ServerOptions server_options;
  server_options.host = listen->first;
  server_options.port = listen->second;
  server_options.io_threads = config->server.io_threads > 0 ? static_cast<int>(config->server.io_threads) : cores;
  server_options.worker_threads =
      config->server.worker_threads > 0 ? static_cast<int>(config->server.worker_threads) : std::max(4, 2 * cores);
  server_options.max_body_bytes = static_cast<std::size_t>(config->server.max_body_bytes);
  server_options.max_header_bytes = static_cast<std::size_t>(config->server.max_header_bytes);
  server_options.header_timeout = std::chrono::milliseconds(config->server.header_timeout_ms);
  server_options.body_timeout = std::chrono::milliseconds(config->server.body_timeout_ms);
  server_options.idle_timeout = std::chrono::milliseconds(config->server.idle_timeout_ms);
  server_options.drain_timeout = std::chrono::milliseconds(config->server.drain_timeout_ms);
  server_options.tls_cert_file = config->server.tls_cert;
  server_options.tls_key_file = config->server.tls_key;
  // Custom domains present their own certificate when one was uploaded (docs/domains.md).
  server_options.certificate_for = [&platform](std::string_view host) -> std::optional<http::SniCertificate> {
    auto certificate = platform.domains->certificate_for(host);
    if (!certificate) return std::nullopt;
    return http::SniCertificate{certificate, certificate->chain_pem, certificate->key_pem};
  };

  // The gateway to the product's own services (docs/gateway.md), when a routes file is configured.
  std::shared_ptr<proxy::Gateway> gateway;
  if (!config->proxy.routes_file.empty()) {
    gateway = make_gateway(platform, *config, dispatcher, http_metrics);
    if (auto loaded = gateway->load(); !loaded) {
      log::error("cannot start", {{"error", loaded.error().message}});
      return 1;
    }
    gateway->start();
    server_options.forwarder = gateway;
  }

  std::unique_ptr<http::Server> server;
  try {
    server = std::make_unique<http::Server>(server_options, dispatcher);
  } catch (const std::exception& e) {
    log::error("cannot start the server", {{"error", e.what()}});
    return 1;
  }
  server->on_drain([&platform] {
    platform.draining = true;
    // In-process workers take no new jobs while requests drain; running ones finish after (shutdown_grace_ms).
    platform.workers()->stop_taking_jobs();
  });
  log::info("listening", {{"address", server_options.host},
                          {"port", server->port()},
                          {"tls", !server_options.tls_cert_file.empty()},
                          {"database", storage::backend_name(platform.db().backend())},
                          {"io_threads", server_options.io_threads},
                          {"worker_threads", server_options.worker_threads}});
  server->run();
  server.reset();
  if (gateway) gateway->stop();
  if (platform.api_calls) platform.api_calls->stop();  // the last counts, before anything can end the process
  platform.analytics->stop();                          // and the last activity marks
  business_metrics.stop();
  churn_gauges.stop();
  if (!platform.workers()->stop_workers()) {
    log::warn("jobs still running after jobs.shutdown_grace_ms; they run again after their lease");
    std::_Exit(0);
  }
  opened->reset();
  log::info("stopped");
  return 0;
}

int worker_command(const CommonOptions& options) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  ::signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread starts, so only sigwait below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto opened = open_platform(*config, config->storage.migrate_on_start, true);
  if (!opened) {
    log::error("cannot start", {{"error", opened.error().message}});
    return 1;
  }
  app::Platform& platform = **opened;
  if (auto started = platform.start_audit_services(); !started) {
    log::error("cannot start", {{"error", started.error().message}});
    return 1;
  }
  if (auto started = platform.workers()->start_workers(); !started) {
    log::error("cannot start the background workers", {{"error", started.error().message}});
    return 1;
  }
  const auto idle_pools = close_idle_tenant_pools(platform);
  // /health, /ready and /metrics for the orchestrator's probes and Prometheus (jobs.worker_listen).
  std::unique_ptr<http::Server> ops_server;
  std::thread ops_thread;
  if (!config->jobs.worker_listen.empty()) {
    metrics::register_process_collector(platform.registry);
    register_ops_metrics(platform, platform.registry, "");
    http::Router router;
    api::register_ops_routes(router, platform);
    const auto listen = parse_listen(config->jobs.worker_listen);
    http::ServerOptions ops_options{
        .host = listen->first, .port = listen->second, .io_threads = 1, .worker_threads = 2};
    ops_options.handle_signals = false;
    try {
      ops_server = std::make_unique<http::Server>(
          ops_options,
          std::make_shared<const http::Dispatcher>(std::move(router), std::vector<http::Middleware>{}, JsonLimits{}));
    } catch (const std::exception& e) {
      log::error("cannot start the worker's listener", {{"error", e.what()}});
      return 1;
    }
    ops_thread = std::thread([&ops_server] { ops_server->run(); });
  }
  log::info("worker running", {{"queue", std::string(platform.background->queue().backend_name())},
                               {"concurrency", config->jobs.concurrency},
                               {"listen", config->jobs.worker_listen}});
  int received = 0;
  sigwait(&stop_signals, &received);
  log::info("stopping", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  platform.draining = true;  // /ready answers 503 from now on
  if (ops_server) {
    ops_server->shutdown();
    ops_thread.join();
    ops_server.reset();
  }
  if (!platform.workers()->stop_workers()) {
    log::warn("jobs still running after jobs.shutdown_grace_ms; they run again after their lease");
    std::_Exit(0);
  }
  opened->reset();
  log::info("stopped");
  return 0;
}

int audit_verify_command(const CommonOptions& options, const std::string& tenant, const std::string& checkpoint_path) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    std::optional<std::string> chain;
    if (!tenant.empty()) chain = tenant;
    auto report = platform.audit->verify(chain);
    if (!report) {
      std::cerr << "atrium: audit verify: " << report.error().message << "\n";
      return report.error().code == Errc::not_found ? 2 : 1;
    }
    std::vector<audit::Finding> findings = report->findings;
    if (!checkpoint_path.empty()) {
      std::ifstream in(checkpoint_path);
      std::stringstream text;
      text << in.rdbuf();
      auto doc = Json::parse(text.str(), nullptr, false);
      if (!in || doc.is_discarded() || !doc.contains("chains") || !doc["chains"].is_array()) {
        std::cerr << "atrium: " << checkpoint_path << " is not an audit checkpoint\n";
        return 2;
      }
      std::vector<audit::ChainHead> heads;
      for (const auto& c : doc["chains"]) {
        if (!c.is_object() || !c.value("chain_id", Json()).is_string() || !c.value("seq", Json()).is_number_integer() ||
            !c.value("hash", Json()).is_string()) {
          std::cerr << "atrium: " << checkpoint_path << ": each chain needs chain_id, seq and hash\n";
          return 2;
        }
        if (chain && c["chain_id"] != *chain) continue;
        heads.push_back({c["chain_id"], c["seq"], c["hash"]});
      }
      auto checked = platform.audit->verify_checkpoint(heads);
      if (!checked) {
        std::cerr << "atrium: audit verify: " << checked.error().message << "\n";
        return 1;
      }
      findings.insert(findings.end(), checked->findings.begin(), checked->findings.end());
    }
    for (const auto& f : findings) {
      std::cout << fmt::format("TAMPERED chain {} seq {}{}: {}\n", f.chain_id, f.seq,
                               f.entry_id.empty() ? "" : " entry " + f.entry_id, f.problem);
    }
    std::cout << fmt::format("{} chain(s), {} entries checked: {}\n", report->chains, report->entries,
                             findings.empty() ? "intact" : "TAMPERING FOUND");
    return findings.empty() ? 0 : 3;
  });
}

int audit_checkpoint_command(const CommonOptions& options) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto heads = platform.audit->heads();
    if (!heads) {
      std::cerr << "atrium: audit checkpoint: " << heads.error().message << "\n";
      return 1;
    }
    Json chains = Json::array();
    for (const auto& h : *heads) chains.push_back({{"chain_id", h.chain_id}, {"seq", h.seq}, {"hash", h.hash}});
    std::cout << Json{{"created_at", format_rfc3339(platform.clock().now())}, {"chains", chains}}.dump(2) << "\n";
    return 0;
  });
}

int audit_retention_command(const CommonOptions& options) {
  return with_platform(options, [&](app::Platform& platform, const Config& config) {
    const auto cutoff = platform.clock().now() - std::chrono::days(config.audit.retention_days);
    auto deleted = platform.audit->apply_retention(platform.admin_db(), cutoff);
    if (!deleted) {
      std::cerr << "atrium: audit retention: " << deleted.error().message << "\n";
      return 1;
    }
    std::cout << fmt::format("{} entries of tenants purged before {} deleted\n", *deleted, format_rfc3339(cutoff));
    return 0;
  });
}

int billing_run_command(const CommonOptions& options, bool quiet) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto progress = [quiet](std::int64_t done, std::int64_t total) {
      if (!quiet) draw_progress("billing run", done, total, " subscriptions");
    };
    auto stats = platform.billing->run(progress);
    if (!stats) {
      std::cerr << "\natrium: billing run: " << stats.error().message << "\n";
      return 1;
    }
    std::cout << fmt::format(
        "renewed {} subscription period(s), {} invoice(s); {} charge(s) succeeded, {} failed, {} retried; {} "
        "subscription(s) ended\n",
        stats->renewed, stats->invoices, stats->charged, stats->failed, stats->retried, stats->cancelled);
    return 0;
  });
}

int analytics_etl_command(const CommonOptions& options, bool full, const std::string& from, bool quiet) {
  std::optional<Instant> from_day;
  if (!from.empty()) {
    auto t = parse_rfc3339(from.size() == 10 ? from + "T00:00:00Z" : from);
    if (!t) {
      std::cerr << "atrium: --from must be a date (YYYY-MM-DD)\n";
      return 2;
    }
    from_day = *t;
  }
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto wh = platform.warehouse();
    if (!wh) {
      std::cerr << "atrium: analytics etl: " << wh.error().message << "\n";
      return 1;
    }
    auto stats =
        (*wh)->run_etl({.full = full, .from = from_day, .progress = [quiet](std::int64_t done, std::int64_t total) {
                          if (!quiet) draw_progress("analytics etl", done, total, " days");
                        }});
    if (!stats) {
      std::cerr << "\natrium: analytics etl: " << stats.error().message << "\n";
      return 1;
    }
    std::cout << fmt::format("loaded {} day(s) from {}: {} source row(s), {} fact row(s) in {} ms\n",
                             stats->to_day - stats->from_day,
                             format_rfc3339(from_unix_seconds(stats->from_day * 86'400)).substr(0, 10),
                             stats->source_rows, stats->warehouse_rows, stats->duration.count());
    return 0;
  });
}

int demo_seed_command(const CommonOptions& options, const app::DemoOptions& demo, bool quiet) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  // The platform lives on a manual clock walking from the demo's first day to now, so every row carries the day
  // it happened on.
  const Instant until = SystemClock::instance().now();
  ManualClock clock(app::demo_start(until, demo.months));
  app::Platform::Options platform_options;
  platform_options.migrate = config->storage.migrate_on_start;
  platform_options.background = false;
  platform_options.on_tenant_migrated = tenant_progress;
  auto platform = app::Platform::open(*config, clock, platform_options);
  if (!platform) {
    log::error("cannot open the platform", {{"error", platform.error().message}});
    return 1;
  }
  app::DemoOptions o = demo;
  o.progress = [quiet](std::int64_t done, std::int64_t total) {
    if (!quiet) draw_progress("demo seed", done, total, " days");
  };
  auto stats = app::seed_demo(**platform, clock, until, o);
  if (!stats) {
    std::cerr << "\natrium: demo seed: " << stats.error().message << "\n";
    return stats.error().code == Errc::invalid_argument || stats.error().code == Errc::conflict ? 2 : 1;
  }
  std::cout << fmt::format(
      "seeded {} tenant(s) over {} month(s): {} subscription(s), {} event(s), {} billing run(s); owners sign in as "
      "owner@demo-N.demo with password demo-password\n",
      stats->tenants, demo.months, stats->subscriptions, stats->events, stats->billing_runs);
  return 0;
}

int ml_train_command(const MlTrainOptions& o) {
  if (o.cv < 2 || o.cv > 20) {
    std::cerr << "atrium: --cv must be 2-20\n";
    return 2;
  }
  const auto started = std::chrono::steady_clock::now();
  ml::CsvSummary summary;
  auto data = ml::load_csv(o.data, {.label = o.label, .positive = o.positive}, &summary);
  if (!data) {
    std::cerr << "atrium: ml train: " << data.error().message << "\n";
    return 2;
  }
  ml::EnsembleOptions options;
  options.seed = o.seed;
  options.fit_weights = o.fit_weights;
  auto cv = ml::cross_validate(*data, o.cv, options, [&](int done, int total, std::string_view) {
    if (!o.quiet) draw_progress("training", done, total, " steps");
  });
  if (!cv) {
    std::cerr << "\natrium: ml train: " << cv.error().message << "\n";
    return 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  Json models = Json::object();
  for (std::size_t m = 0; m < ml::k_model_names.size(); ++m) {
    const auto& s = cv->pooled[m];
    models[std::string(ml::k_model_names[m])] = {{"roc_auc", s.roc_auc},
                                                 {"pr_auc", s.pr_auc},
                                                 {"brier", s.brier},
                                                 {"log_loss", s.log_loss},
                                                 {"fold_roc_auc", cv->fold_roc_auc[m]}};
  }
  if (o.json) {
    std::cout << Json{{"rows", summary.rows},     {"positives", summary.positives},
                      {"features", data->cols()}, {"folds", o.cv},
                      {"seed", o.seed},           {"weights", cv->weights},
                      {"seconds", seconds},       {"models", models}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << fmt::format(
      "{}: {} rows ({} positive), {} dropped without a label; {} numeric and {} categorical columns -> {} features\n"
      "{}-fold stratified cross-validation (seed {}), scores of the pooled out-of-fold predictions:\n\n",
      o.data, summary.rows, summary.positives, summary.dropped_rows, summary.numeric_columns,
      summary.categorical_columns, data->cols(), o.cv, o.seed);
  std::cout << fmt::format("{:<16} {:>8} {:>8} {:>8} {:>9} {:>22}\n", "model", "ROC AUC", "PR AUC", "Brier", "log loss",
                           "ROC AUC by fold (sd)");
  for (std::size_t m = 0; m < ml::k_model_names.size(); ++m) {
    const auto& s = cv->pooled[m];
    const auto& folds = cv->fold_roc_auc[m];
    double mean = 0, var = 0;
    for (double v : folds) mean += v / static_cast<double>(folds.size());
    for (double v : folds) var += (v - mean) * (v - mean) / static_cast<double>(folds.size());
    std::cout << fmt::format("{:<16} {:>8.4f} {:>8.4f} {:>8.4f} {:>9.4f} {:>14.4f} ({:.4f})\n", ml::k_model_names[m],
                             s.roc_auc, s.pr_auc, s.brier, s.log_loss, mean, std::sqrt(var));
  }
  std::cout << fmt::format("\nensemble weights (forest, xgboost, network): {:.2f} / {:.2f} / {:.2f}{}; {:.2f} s\n",
                           cv->weights[0], cv->weights[1], cv->weights[2], o.fit_weights ? " (fitted)" : "", seconds);
  return 0;
}

namespace {

// A date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time; nullopt for "".
Result<std::optional<Instant>> cli_time(const std::string& text, std::string_view flag) {
  if (text.empty()) return std::optional<Instant>();
  auto t = parse_rfc3339(text.size() == 10 ? text + "T00:00:00Z" : text);
  if (!t) return fail(Errc::invalid_argument, std::string(flag) + " must be a date (YYYY-MM-DD) or an RFC 3339 time");
  return std::optional<Instant>(*t);
}

}  // namespace

int churn_train_command(const CommonOptions& options, const ChurnCommandOptions& o) {
  auto from = cli_time(o.from, "--from");
  auto to = cli_time(o.to, "--to");
  for (const auto* r : {&from, &to}) {
    if (!*r) {
      std::cerr << "atrium: " << r->error().message << "\n";
      return 2;
    }
  }
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    churn::TrainRequest request{.from = *from,
                                .to = *to,
                                .horizon_days = o.horizon_days,
                                .step_days = o.step_days,
                                .activate = o.activate,
                                .fit_weights = o.fit_weights,
                                .seed = 42};
    auto trained = platform.churn->train(request, k_cli, platform.audit->recorder(k_cli),
                                         [&](int done, int total, std::string_view) {
                                           if (!o.quiet) draw_progress("churn model", done, total, " steps");
                                         });
    if (!trained) {
      std::cerr << "\natrium: churn train: " << trained.error().message << "\n";
      return trained.error().code == Errc::invalid_argument ? 2 : 1;
    }
    std::cout << churn::to_json(*trained).dump(2) << "\n";
    return 0;
  });
}

int churn_activate_command(const CommonOptions& options, const ChurnCommandOptions& o) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto m = platform.churn->activate(o.version, k_cli, platform.audit->recorder(k_cli));
    if (!m) {
      std::cerr << "atrium: churn activate: " << m.error().message << "\n";
      return m.error().code == Errc::not_found ? 2 : 1;
    }
    std::cout << fmt::format("churn model {} is active\n", m->version);
    return 0;
  });
}

int churn_score_command(const CommonOptions& options) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto batch = platform.churn->score_all();
    if (!batch) {
      std::cerr << "atrium: churn score: " << batch.error().message << "\n";
      return batch.error().code == Errc::conflict ? 2 : 1;
    }
    std::cout << fmt::format("scored {} tenant(s): {} at high risk, {} newly\n", batch->scored, batch->high,
                             batch->became_high.size());
    return 0;
  });
}

int churn_evaluate_command(const CommonOptions& options, const ChurnCommandOptions& o) {
  auto at = cli_time(o.at, "--at");
  if (!at || !*at) {
    std::cerr << "atrium: --at must be a date (YYYY-MM-DD) or an RFC 3339 time\n";
    return 2;
  }
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto e = platform.churn->evaluate(o.version, **at, std::chrono::days(o.horizon_days));
    if (!e) {
      std::cerr << "atrium: churn evaluate: " << e.error().message << "\n";
      return e.error().code == Errc::internal || e.error().code == Errc::unavailable ? 1 : 2;
    }
    std::cout << e->dump(2) << "\n";
    return 0;
  });
}

namespace {

// The user named by --user or --email; prints why not and returns nullopt (exit 2) when there is none.
std::optional<std::string> named_user(app::Platform& platform, const std::string& user_id, const std::string& email) {
  if (!user_id.empty()) return user_id;
  auto found = platform.users->find_by_email(email);
  if (!found) {
    std::cerr << "atrium: "
              << (found.error().code == Errc::not_found ? "no user with this email address" : found.error().message)
              << "\n";
    return std::nullopt;
  }
  return found->id;
}

}  // namespace

int user_export_command(const CommonOptions& options, const std::string& user_id, const std::string& email) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto id = named_user(platform, user_id, email);
    if (!id) return 2;
    auto exported = platform.personal_data->export_user(*id, platform.audit->recorder(k_cli));
    if (!exported) {
      std::cerr << "atrium: user export: " << exported.error().message << "\n";
      return exported.error().code == Errc::not_found ? 2 : 1;
    }
    std::cout << exported->dump(2) << "\n";
    return 0;
  });
}

int user_erase_command(const CommonOptions& options, const std::string& user_id, const std::string& email) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto id = named_user(platform, user_id, email);
    if (!id) return 2;
    auto erased = platform.personal_data->erase_user(*id, platform.audit->recorder(k_cli));
    if (!erased) {
      std::cerr << "atrium: user erase: " << erased.error().message << "\n";
      return erased.error().code == Errc::not_found || erased.error().code == Errc::conflict ? 2 : 1;
    }
    std::cout << erased->dump(2) << "\n";
    return 0;
  });
}

namespace {

// An id or a slug, read as X-Tenant-ID is (the two never share a form).
Result<tenancy::Tenant> find_tenant(app::Platform& platform, const std::string& tenant) {
  const auto ref = tenancy::parse_tenant_ref(tenant);
  if (ref.kind == tenancy::RefKind::id) return platform.tenants->get(ref.value);
  if (ref.kind == tenancy::RefKind::slug) return platform.tenants->get_by_slug(ref.value);
  return fail(Errc::not_found, "no tenant with the id or slug " + tenant);
}

void print_tables(const std::vector<ArchiveTable>& tables) {
  for (const auto& t : tables) {
    std::cout << fmt::format("  {:<8} {:<20} {:>8} rows  sha256 {}\n", t.plane, t.table, t.rows, t.sha256);
  }
}

int archive_error(const Error& e) {
  std::cerr << "atrium: " << e.message << "\n";
  return e.code == Errc::internal || e.code == Errc::unavailable ? 1 : 2;
}

}  // namespace

int tenant_move_command(const CommonOptions& options, const std::string& tenant, const std::string& to,
                        std::int64_t settle_ms, bool quiet) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto level = tenancy::parse_isolation(to);
    if (!level) {
      std::cerr << "atrium: --to must be shared, schema or database\n";
      return 2;
    }
    auto found = find_tenant(platform, tenant);
    if (!found) {
      std::cerr << "atrium: " << found.error().message << "\n";
      return found.error().code == Errc::not_found ? 2 : 1;
    }
    MoveOptions move;
    move.settle = std::chrono::milliseconds(settle_ms);
    if (!quiet) {
      move.progress = [](std::string_view step, int done, int total) { draw_progress(step, done, total, ""); };
    }
    auto report = move_tenant(platform, found->id, *level, move);
    if (!report) {
      std::cerr << "atrium: " << report.error().message << "\n";
      return report.error().code == Errc::conflict ? 2 : 1;
    }
    if (report->already_there) {
      std::cout << fmt::format("tenant {} is already at the {} level\n", found->id, to);
      return 0;
    }
    std::cout << fmt::format(
        "tenant {} moved from {} to {}: {} rows copied, {} written while writes paused for {} ms\n", found->id,
        tenancy::isolation_name(report->from), to, report->copied, report->synced, report->frozen.count());
    for (const auto& d : report->verified) {
      std::cout << fmt::format("  {:<20} {:>8} rows  sha256 {}\n", d.table, d.rows, d.sha256);
    }
    return 0;
  });
}

int tenant_export_command(const CommonOptions& options, const std::string& tenant, const std::string& out,
                          const ArchiveKeyFiles& keys, bool quiet) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto key = protection::read_archive_key(keys.archive_key);
    if (!key) return archive_error(key.error());
    std::optional<protection::ArchiveSigningKey> signer;
    if (!keys.signing_key.empty()) {
      auto loaded = protection::ArchiveSigningKey::load_private(keys.signing_key);
      if (!loaded) return archive_error(loaded.error());
      signer = std::move(*loaded);
    }
    auto found = find_tenant(platform, tenant);
    if (!found) return archive_error(found.error());
    ArchiveProgress progress;
    if (!quiet) progress = [](std::string_view step, int done, int total) { draw_progress(step, done, total, ""); };
    auto report = export_tenant(platform, found->id, out, *key, progress, signer);
    if (!report) return archive_error(report.error());
    std::cout << fmt::format(
        "tenant {} ({}) exported to {}: {} accounts, {} data keys, {} audit entries, {} bytes, {}; {}\n",
        report->tenant_id, report->slug, out, report->users, report->data_keys, report->audit_entries, report->bytes,
        report->is_signed ? "signed" : "not signed",
        report->one_instant ? "every table read at one instant"
                            : "its own store and the control plane read one after the other");
    print_tables(report->tables);
    return 0;
  });
}

int tenant_import_command(const CommonOptions& options, const std::string& in, const ArchiveKeyFiles& keys,
                          const std::string& isolation, bool quiet) {
  return with_platform(options, [&](app::Platform& platform, const Config&) {
    auto key = protection::read_archive_key(keys.archive_key);
    if (!key) return archive_error(key.error());
    ImportOptions import;
    if (!keys.signing_key.empty()) {
      auto loaded = protection::ArchiveSigningKey::load_public(keys.signing_key);
      if (!loaded) return archive_error(loaded.error());
      import.verifier = std::move(*loaded);
    }
    if (!isolation.empty()) import.isolation = tenancy::parse_isolation(isolation);
    if (!quiet) {
      import.progress = [](std::string_view step, int done, int total) { draw_progress(step, done, total, "");
    };
    }
    auto report = import_tenant(platform, in, *key, import);
    if (!report) return archive_error(report.error());
    std::cout << fmt::format(
        "tenant {} ({}) imported at the {} level from an archive {}: {} accounts restored ({} already here), {} data "
        "keys, {} audit entries restored, {} plans and coupons added; every table read back equal to the archive:\n",
        report->tenant_id, report->slug, tenancy::isolation_name(report->isolation),
        report->signature_checked ? "whose signature verified"
        : report->is_signed       ? "signed (the signature not checked: no --verify-key)"
                                  : "not signed",
        report->users, report->users_present, report->data_keys, report->audit_entries, report->catalog_added);
    print_tables(report->tables);
    return 0;
});
}

}  // namespace atrium::app
