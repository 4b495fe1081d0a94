#include "audit/exporter.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "core/log.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::audit {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_cursors{"audit_export_cursors", "SELECT chain_id, seq FROM audit_export_cursors WHERE sink = $1"};
// Never moves a cursor back (another instance may be ahead).
constexpr Statement k_cursor_put_pg{"audit_export_cursor_put_pg",
                                    "INSERT INTO audit_export_cursors (sink, chain_id, seq) VALUES ($1, $2, $3) "
                                    "ON CONFLICT (sink, chain_id) DO UPDATE SET seq = "
                                    "GREATEST(audit_export_cursors.seq, excluded.seq)"};
constexpr Statement k_cursor_put_sqlite{"audit_export_cursor_put_sqlite",
                                        "INSERT INTO audit_export_cursors (sink, chain_id, seq) VALUES ($1, $2, $3) "
                                        "ON CONFLICT (sink, chain_id) DO UPDATE SET seq = "
                                        "max(audit_export_cursors.seq, excluded.seq)"};

}  // namespace

struct Exporter::Worker {
  AuditLog& log;
  std::unique_ptr<Sink> sink;
  ExporterOptions options;
  metrics::Gauge& pending;
  metrics::Counter& exported;
  metrics::Counter& failures;

  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
  bool stopping = false;
  std::map<std::string, std::int64_t> cursors;  // this process's view; the table holds the maximum
  bool cursors_loaded = false;
  std::thread thread;

  Result<void> load_cursors() {
    // Every chain's cursor: platform work (on PostgreSQL the table admits only the platform scope, migration 0013).
    auto loaded = tenancy::transact_platform(log.owner_database(),
                                             [&](Transaction& tx) -> Result<void> {
                                               auto rows = tx.execute(k_cursors, {Value(std::string(sink->name()))});
                                               if (!rows) return std::unexpected(rows.error());
                                               for (std::size_t i = 0; i < rows->rows.size(); ++i) {
                                                 cursors[rows->text_at(i, 0).value_or("")] =
                                                     rows->int_at(i, 1).value_or(0);
                                               }
                                               return {};
                                             },
                                             {.read_only = true});
    if (!loaded) return loaded;
    cursors_loaded = true;
    return {};
  }

  // One pass over every chain. Returns whether anything was sent; an error when the sink or database failed.
  Result<bool> pass() {
    if (!cursors_loaded) {
      if (auto r = load_cursors(); !r) return std::unexpected(r.error());
    }
    auto heads = log.heads();
    if (!heads) return std::unexpected(heads.error());
    std::int64_t behind = 0;
    for (const auto& h : *heads) behind += std::max<std::int64_t>(0, h.seq - cursors[h.chain_id]);
    pending.set(static_cast<double>(behind));
    bool sent = false;
    for (const auto& h : *heads) {
      std::int64_t& cursor = cursors[h.chain_id];
      if (cursor > h.seq) cursor = 0;  // the chain went (retention) and started again
      while (cursor < h.seq) {
        auto entries = log.read_chain(h.chain_id, cursor, options.batch);
        if (!entries) return std::unexpected(entries.error());
        if (entries->empty()) break;
        std::vector<std::string> lines;
        lines.reserve(entries->size());
        for (const auto& e : *entries) lines.push_back(safe_dump(to_json(e)));
        if (auto w = sink->write(lines); !w) {
          failures.inc();
          return std::unexpected(w.error());
        }
        const std::int64_t last = entries->back().seq;
        auto saved = tenancy::transact_platform(log.owner_database(), [&](Transaction& tx) -> Result<void> {
          auto r = tx.execute(tx.backend() == storage::Backend::postgres ? k_cursor_put_pg : k_cursor_put_sqlite,
                              {Value(std::string(sink->name())), Value(h.chain_id), Value(last)});
          if (!r) return std::unexpected(r.error());
          return {};
        });
        if (!saved) return std::unexpected(saved.error());
        cursor = last;
        exported.inc(static_cast<double>(entries->size()));
        behind -= static_cast<std::int64_t>(entries->size());
        pending.set(static_cast<double>(std::max<std::int64_t>(0, behind)));
        sent = true;
      }
    }
    return sent;
  }

  void run() {
    bool failing = false;
    while (true) {
      Result<bool> sent = fail(Errc::internal, "exporter pass threw");
      try {
        sent = pass();
      } catch (const std::exception& e) {
        failures.inc();
        sent = fail(Errc::internal, std::string("exporter pass threw: ") + e.what());
      }
      if (!sent && !failing) {
        log::warn("audit export failing; will retry from the database",
                  {{"sink", std::string(sink->name())}, {"error", sent.error().message}});
      } else if (sent && failing) {
        log::info("audit export recovered", {{"sink", std::string(sink->name())}});
      }
      failing = !sent.has_value();
      std::unique_lock lock(mutex);
      if (stopping) return;
      if (sent && *sent) continue;  // more may have arrived while sending
      cv.wait_for(lock, options.interval, [&] { return stopping || (woken && !failing); });
      woken = false;
      if (stopping) return;
    }
  }
};

Exporter::Exporter(AuditLog& log, std::vector<std::unique_ptr<Sink>> sinks, ExporterOptions options,
                   metrics::Registry& registry) {
  auto& pending =
      registry.gauge("atrium_audit_export_pending", "Audit entries not yet accepted by a SIEM sink", {"sink"});
  auto& exported = registry.counter("atrium_audit_exported_total", "Audit entries accepted by a SIEM sink", {"sink"});
  auto& failures =
      registry.counter("atrium_audit_export_failures_total", "Failed writes to a SIEM sink (retried)", {"sink"});
  for (auto& sink : sinks) {
    const std::string name(sink->name());
    auto w = std::unique_ptr<Worker>(
        new Worker{log, std::move(sink), options, pending.with({name}), exported.with({name}), failures.with({name})});
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->thread = std::thread([worker = w.get()] { worker->run(); });
}

Exporter::~Exporter() {
  for (auto& w : workers_) {
    {
      std::lock_guard lock(w->mutex);
      w->stopping = true;
    }
    w->cv.notify_all();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Exporter::wake() {
  for (auto& w : workers_) {
    {
      std::lock_guard lock(w->mutex);
      w->woken = true;
    }
    w->cv.notify_one();
  }
}

}  // namespace atrium::audit
