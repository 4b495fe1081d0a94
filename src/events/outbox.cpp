#include "events/outbox.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "jobs/lease.hpp"

namespace atrium::events {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;
using tenancy::TenantStatement;

constexpr Statement k_pending_insert{
    "pending_events_insert",
    "INSERT INTO pending_events (id, tenant_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO "
    "NOTHING"};
constexpr Statement k_pending_page{"pending_events_page",
                                   "SELECT id, tenant_id, type, data, created_at FROM pending_events WHERE id > $1 "
                                   "ORDER BY id LIMIT $2"};
constexpr Statement k_pending_delete{"pending_events_delete", "DELETE FROM pending_events WHERE id = $1"};
constexpr TenantStatement k_local_insert{
    "event_outbox_insert",
    "INSERT INTO event_outbox (tenant_id, id, type, data, created_at) VALUES ($1, $2, $3, $4, $5)"};
constexpr TenantStatement k_local_page{"event_outbox_page",
                                       "SELECT id, type, data, created_at FROM event_outbox WHERE tenant_id = $1 ORDER "
                                       "BY id LIMIT 500"};
constexpr TenantStatement k_local_delete{"event_outbox_delete",
                                         "DELETE FROM event_outbox WHERE tenant_id = $1 AND id = $2"};

Event make_event(const Clock& clock, std::string tenant_id, std::string type, Json data) {
  const auto now = clock.now();
  return {new_uuid_v7(clock), std::move(type), std::move(tenant_id), std::chrono::floor<std::chrono::seconds>(now),
          std::move(data)};
}

Result<void> insert_pending(Transaction& tx, const Event& e) {
  auto r = tx.execute(k_pending_insert, {Value(e.id), Value(e.tenant_id), Value(e.type), Value(e.data.dump()),
                                         Value(unix_seconds(e.created))});
  if (!r) return std::unexpected(r.error());
  return {};
}

Json parse_object(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  return j.is_discarded() ? Json::object() : j;
}

}  // namespace

Json to_json(const Event& e) {
  return {{"id", e.id},
          {"type", e.type},
          {"created", unix_seconds(e.created)},
          {"tenant_id", e.tenant_id},
          {"data", e.data}};
}

Result<Event> emit(tenancy::TenantTransaction& tx, const Clock& clock, std::string type, Json data) {
  Event e = make_event(clock, tx.tenant_id(), std::move(type), std::move(data));
  if (storage::Transaction* control = tx.control_plane()) {
    if (auto r = insert_pending(*control, e); !r) return std::unexpected(r.error());
    return e;
  }
  auto r =
      tx.execute(k_local_insert, {Value(e.id), Value(e.type), Value(e.data.dump()), Value(unix_seconds(e.created))});
  if (!r) return std::unexpected(r.error());
  return e;
}

Result<Event> emit(storage::Transaction& control_tx, const Clock& clock, std::string tenant_id, std::string type,
                   Json data) {
  Event e = make_event(clock, std::move(tenant_id), std::move(type), std::move(data));
  if (auto r = insert_pending(control_tx, e); !r) return std::unexpected(r.error());
  return e;
}

Result<int> move_to_control_plane(tenancy::TenantData& data, storage::Database& control,
                                  const tenancy::Tenant& tenant) {
  if (data.shares_control_plane(tenant)) return 0;
  int moved = 0;
  while (true) {
    std::vector<Event> batch;
    auto read = data.transact(tenant,
                              [&](tenancy::TenantTransaction& tx) -> Result<void> {
                                batch.clear();
                                auto rs = tx.execute(k_local_page);
                                if (!rs) return std::unexpected(rs.error());
                                for (std::size_t i = 0; i < rs->rows.size(); ++i) {
                                  batch.push_back({rs->text_at(i, 0).value_or(""), rs->text_at(i, 1).value_or(""),
                                                   tenant.id, from_unix_seconds(rs->int_at(i, 3).value_or(0)),
                                                   parse_object(rs->text_at(i, 2).value_or("{}"))});
                                }
                                return {};
                              },
                              {.read_only = true});
    if (!read) return std::unexpected(read.error());
    if (batch.empty()) return moved;
    // Copy first (ON CONFLICT DO NOTHING), then delete: a crash in between copies again, harmlessly.
    auto copied = control.transact([&](Transaction& tx) -> Result<void> {
      if (auto s = tenancy::scope_to_tenant(tx, tenant.id); !s) return s;  // pending_events' RLS: the tenant's rows
      for (const auto& e : batch) {
        if (auto r = insert_pending(tx, e); !r) return r;
      }
      return {};
    });
    if (!copied) return std::unexpected(copied.error());
    auto deleted = data.transact(tenant, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      for (const auto& e : batch) {
        auto r = tx.execute(k_local_delete, {Value(e.id)});
        if (!r) return std::unexpected(r.error());
      }
      return {};
    });
    if (!deleted) return std::unexpected(deleted.error());
    moved += static_cast<int>(batch.size());
  }
}

std::vector<TenantStatement> tenant_statements() { return {k_local_insert, k_local_page, k_local_delete}; }

std::vector<TenantStatement> purge_statements() {
  return {{"events_purge_pending", "DELETE FROM pending_events WHERE tenant_id = $1"}};
}

struct Relay::Impl {
  storage::Database& db;
  const Clock& clock;
  Publisher publisher;
  std::chrono::milliseconds interval;
  RelayLease lease;
  std::mutex mutex;
  std::condition_variable cv;
  bool woken = false;
  bool stopping = false;
  std::mutex run_mutex;  // one run_once at a time in this process
  std::thread thread;

  Result<int> run_once(int limit) {
    std::lock_guard run_lock(run_mutex);
    if (!lease.holder.empty()) {
      auto held = jobs::take_lease(db, "relay", lease.holder, clock.now(), lease.duration);
      if (!held) return std::unexpected(held.error());
      if (!*held) return 0;
    }
    int published = 0;
    std::set<std::string> held;  // tenants whose earlier event could not be published in this pass
    std::optional<Error> first_error;
    std::string after;  // ids are UUIDv7 text: "" sorts before every one
    // Page on past events that were held back, so one tenant's backlog cannot hide the others' events.
    for (int page = 0; page < 20 && published < limit; ++page) {
      auto rs = storage::transact_value<storage::ResultSet>(
          db,
          [&](Transaction& tx) {
            return tx.execute(k_pending_page, {Value(after), Value(std::int64_t{limit})});
          },
          {.read_only = true});
      if (!rs) return std::unexpected(rs.error());
      for (std::size_t i = 0; i < rs->rows.size(); ++i) {
        Event e{rs->text_at(i, 0).value_or(""), rs->text_at(i, 2).value_or(""), rs->text_at(i, 1).value_or(""),
                from_unix_seconds(rs->int_at(i, 4).value_or(0)), parse_object(rs->text_at(i, 3).value_or("{}"))};
        after = e.id;
        // In order per tenant: an event that cannot be published yet holds back that tenant's later ones, not
        // other tenants' (one tenant's unreachable database must not stop everyone's webhooks).
        if (held.contains(e.tenant_id)) continue;
        if (auto p = publisher(e); !p) {
          held.insert(e.tenant_id);
          if (!first_error) first_error = p.error();
          log::warn("event not published yet",
                    {{"event_id", e.id}, {"tenant_id", e.tenant_id}, {"error", p.error().message}});
          continue;
        }
        auto d = db.transact([&](Transaction& tx) -> Result<void> {
          auto r = tx.execute(k_pending_delete, {Value(e.id)});
          if (!r) return std::unexpected(r.error());
          return {};
        });
        if (!d) return std::unexpected(d.error());
        ++published;
      }
      if (static_cast<int>(rs->rows.size()) < limit || held.empty()) break;
    }
    if (published == 0 && first_error) return std::unexpected(*first_error);
    return published;
  }

  void loop() {
    while (true) {
      {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, interval, [&] { return woken || stopping; });
        if (stopping) return;
        woken = false;
      }
      while (true) {
        auto n = run_once(500);
        if (!n) {
          log::warn("event relay failed", {{"error", n.error().message}});
          break;
        }
        if (*n < 500) break;
      }
    }
  }
};

Relay::Relay(storage::Database& control, const Clock& clock, Publisher publisher, std::chrono::milliseconds interval,
             RelayLease lease)
    : impl_(std::make_unique<Impl>(control, clock, std::move(publisher), interval, std::move(lease))) {}

Relay::~Relay() { stop(); }

void Relay::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void Relay::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (!impl_->thread.joinable()) return;
  impl_->thread.join();
  if (!impl_->lease.holder.empty()) (void)jobs::release_lease(impl_->db, "relay", impl_->lease.holder);
}

void Relay::wake() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->woken = true;
  }
  impl_->cv.notify_all();
}

Result<int> Relay::run_once(int limit) { return impl_->run_once(limit); }

}  // namespace atrium::events
