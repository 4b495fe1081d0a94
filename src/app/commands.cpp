#include <signal.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "api/routes.hpp"
#include "app/app.hpp"
#include "core/build_info.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "core/log.hpp"
#include "http/dispatcher.hpp"
#include "http/middleware.hpp"
#include "http/server.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"

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

storage::DatabaseOptions database_options(const Config& config) {
  storage::DatabaseOptions o;
  o.url = config.storage.database_url.empty() ? (std::filesystem::path(config.storage.data_dir) / "atrium.db").string()
                                              : config.storage.database_url;
  o.pool_size = static_cast<int>(config.storage.pool_size);
  o.statement_timeout = std::chrono::milliseconds(config.storage.statement_timeout_ms);
  o.busy_timeout = std::chrono::milliseconds(config.storage.busy_timeout_ms);
  o.connect_timeout = std::chrono::milliseconds(config.storage.connect_timeout_ms);
  return o;
}

Result<std::unique_ptr<storage::Database>> open(const Config& config) {
  std::error_code ec;
  if (config.storage.database_url.empty()) std::filesystem::create_directories(config.storage.data_dir, ec);
  if (ec)
    return fail(Errc::invalid_argument, fmt::format("storage.data_dir {}: {}", config.storage.data_dir, ec.message()));
  return storage::open_database(database_options(config));
}

Result<int> apply_migrations(storage::Database& db) {
  return storage::migrate(db, storage::builtin_migrations(db.backend()), SystemClock::instance(),
                          [](const storage::Migration& m) {
                            log::info("migration applied", {{"version", m.version}, {"name", m.name}});
                          });
}

int config_error(const Error& e) {
  std::cerr << "atrium: configuration error: " << e.message << "\n";
  return 2;
}

}  // namespace

int version_command() {
  const BuildInfo& b = build_info();
  std::cout << fmt::format("atrium {} (revision {}, {}, {})\n", b.version, b.revision, b.compiler, b.build_type);
  return 0;
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
  auto db = open(*config);
  if (!db) {
    log::error("cannot open the database", {{"error", db.error().message}});
    return 1;
  }
  auto applied = apply_migrations(**db);
  if (!applied) {
    log::error("migration failed", {{"error", applied.error().message}});
    return 1;
  }
  auto status = storage::migration_status(**db, storage::builtin_migrations((*db)->backend()));
  std::cout << fmt::format("applied {} migration(s); schema version {}\n", *applied, status ? status->current : -1);
  return 0;
}

int serve_command(const CommonOptions& options) {
  auto config = load(options);
  if (!config) return config_error(config.error());
  init_logging(*config);
  ::signal(SIGPIPE, SIG_IGN);

  auto db = open(*config);
  if (!db) {
    log::error("cannot open the database", {{"error", db.error().message}});
    return 1;
  }
  if (config->storage.migrate_on_start) {
    if (auto applied = apply_migrations(**db); !applied) {
      log::error("migration failed; not starting", {{"error", applied.error().message}});
      return 1;
    }
  }

  const Clock& clock = SystemClock::instance();
  metrics::Registry registry;
  metrics::register_process_collector(registry);
  const BuildInfo& build = build_info();
  registry.gauge("atrium_build_info", "Build information; the value is always 1.", {"version", "revision", "compiler"})
      .with({std::string(build.version), std::string(build.revision), std::string(build.compiler)})
      .set(1);
  http::HttpMetrics http_metrics(registry);

  std::atomic<bool> draining{false};
  api::ApiContext context{**db, registry, storage::builtin_migrations((*db)->backend()), draining};
  http::Router router;
  api::register_routes(router, context);

  std::vector<http::Middleware> middleware{http::request_id_middleware(clock)};
  if (config->log.access_log) middleware.push_back(http::access_log_middleware(clock));
  middleware.push_back(http::metrics_middleware(http_metrics, clock));
  auto dispatcher = std::make_shared<const http::Dispatcher>(
      std::move(router), std::move(middleware), JsonLimits{static_cast<int>(config->server.max_json_depth)});

  const auto listen = parse_listen(config->server.listen);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  http::ServerOptions server_options;
  server_options.host = listen->first;
  server_options.port = listen->second;
  server_options.io_threads = config->server.io_threads > 0 ? static_cast<int>(config->server.io_threads) : cores;
  server_options.worker_threads =
      config->server.worker_threads > 0 ? static_cast<int>(config->server.worker_threads) : std::max(8, 4 * cores);
  server_options.max_body_bytes = static_cast<std::size_t>(config->server.max_body_bytes);
  server_options.max_header_bytes = static_cast<std::size_t>(config->server.max_header_bytes);
  server_options.header_timeout = std::chrono::milliseconds(config->server.header_timeout_ms);
  server_options.body_timeout = std::chrono::milliseconds(config->server.body_timeout_ms);
  server_options.idle_timeout = std::chrono::milliseconds(config->server.idle_timeout_ms);
  server_options.drain_timeout = std::chrono::milliseconds(config->server.drain_timeout_ms);
  server_options.tls_cert_file = config->server.tls_cert;
  server_options.tls_key_file = config->server.tls_key;

  std::unique_ptr<http::Server> server;
  try {
    server = std::make_unique<http::Server>(server_options, dispatcher);
  } catch (const std::exception& e) {
    log::error("cannot start the server", {{"error", e.what()}});
    return 1;
  }
  server->on_drain([&draining] { draining = true; });
  log::info("listening", {{"address", server_options.host},
                          {"port", server->port()},
                          {"tls", !server_options.tls_cert_file.empty()},
                          {"database", storage::backend_name((*db)->backend())},
                          {"io_threads", server_options.io_threads},
                          {"worker_threads", server_options.worker_threads}});
  server->run();
  server.reset();
  db->reset();
  log::info("stopped");
  return 0;
}

}  // namespace atrium::app
