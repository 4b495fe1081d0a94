#pragma once

#include <string>

namespace atrium::metrics {
class Registry;
}

namespace atrium::app {

class Platform;

// The metrics an operator's alerts need that no module owns (docs/operations.md, deploy/prometheus/), read at
// each scrape: atrium_ready (what /ready would answer), the database pools' occupancy (atrium_db_pool_*, the
// tenants' own pools summed as pool="tenants"), and, when `tls_cert` names a file, the certificate's expiry.
void register_ops_metrics(Platform& platform, metrics::Registry& registry, std::string tls_cert);

}  // namespace atrium::app
