#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "audit/audit_log.hpp"
#include "audit/sink.hpp"
#include "observability/metrics.hpp"

namespace atrium::audit {

struct ExporterOptions {
  int batch = 500;                           // entries per Sink::write
  std::chrono::milliseconds interval{1000};  // how often to look without a wake(), and to retry a failed sink
};

// Sends committed audit entries to SIEM sinks, one thread per sink. The database is the buffer: each sink has a
// cursor per chain (audit_export_cursors), advanced only after the sink accepted a batch, so a slow or dead sink
// never delays a request, and whatever it missed is sent from the database when it is back, in chain order.
// Delivery is at least once: a crash between a write and the cursor update sends that batch again. Metrics:
// atrium_audit_export_pending{sink}, atrium_audit_exported_total{sink}, atrium_audit_export_failures_total{sink}.
class Exporter {
 public:
  // `log` and `registry` must outlive the exporter. Threads start at once.
  Exporter(AuditLog& log, std::vector<std::unique_ptr<Sink>> sinks, ExporterOptions options,
           metrics::Registry& registry);
  ~Exporter();  // stops the threads (a write in progress finishes first)

  // Asks every sink's thread to look for new entries now; never blocks. Call after a transaction that appended
  // entries committed.
  void wake();

 private:
  struct Worker;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace atrium::audit
