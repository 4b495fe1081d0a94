#include "app/ops_metrics.hpp"

#include "api/routes.hpp"
#include "app/platform.hpp"
#include "http/certificate.hpp"
#include "observability/metrics.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::app {

void register_ops_metrics(Platform& platform, metrics::Registry& registry, std::string tls_cert) {
  registry.add_collector([&platform](std::string& out) {
    metrics::append_family_header(out, "atrium_ready", "1 when this instance would answer /ready with 200, else 0.",
                                  "gauge");
    metrics::append_sample(out, "atrium_ready", {}, {}, api::readiness(platform) ? 1.0 : 0.0);
  });

  registry.add_collector([&platform](std::string& out) {
    auto pools = platform.pool_stats();
    const auto own = platform.tenant_data->own_pools();
    if (own.open > 0) pools.emplace_back("tenants", own.summed);
    metrics::append_family_header(
        out, "atrium_db_pool_connections",
        "Database connections of this process, by pool and state (in_use: handed out, idle: kept open).", "gauge");
    for (const auto& [pool, s] : pools) {
      metrics::append_sample(out, "atrium_db_pool_connections", {"pool", "state"}, {pool, "in_use"},
                             static_cast<double>(s.in_use));
      metrics::append_sample(out, "atrium_db_pool_connections", {"pool", "state"}, {pool, "idle"},
                             static_cast<double>(s.idle));
    }
    metrics::append_family_header(out, "atrium_db_pool_max_connections", "The most connections each pool may open.",
                                  "gauge");
    for (const auto& [pool, s] : pools) {
      metrics::append_sample(out, "atrium_db_pool_max_connections", {"pool"}, {pool}, static_cast<double>(s.max));
    }
    metrics::append_family_header(out, "atrium_db_pool_waiting", "Callers waiting now for a free connection, by pool.",
                                  "gauge");
    for (const auto& [pool, s] : pools) {
      metrics::append_sample(out, "atrium_db_pool_waiting", {"pool"}, {pool}, static_cast<double>(s.waiting));
    }
    metrics::append_family_header(
        out, "atrium_db_tenant_pools_open",
        "Pools open now to tenants' own databases or files (capped by tenancy.max_open_tenant_pools).", "gauge");
    metrics::append_sample(out, "atrium_db_tenant_pools_open", {}, {}, static_cast<double>(own.open));
  });

  if (tls_cert.empty()) return;
  registry.add_collector([path = std::move(tls_cert)](std::string& out) {
    auto not_after = http::certificate_not_after(path);
    if (!not_after) return;
    metrics::append_family_header(
        out, "atrium_tls_certificate_expiry_timestamp_seconds",
        "When server.tls_cert's certificate stops being valid (notAfter), read from the file at each scrape.", "gauge");
    metrics::append_sample(out, "atrium_tls_certificate_expiry_timestamp_seconds", {}, {},
                           static_cast<double>(*not_after));
  });
}

}  // namespace atrium::app
