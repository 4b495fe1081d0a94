#include "app/tenant_move.hpp"

#include <fmt/format.h>

#include <thread>

#include "app/platform.hpp"
#include "audit/audit_log.hpp"
#include "core/failpoint.hpp"
#include "core/log.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_directory.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::app {

namespace {

using tenancy::Isolation;
using tenancy::MoveState;
using tenancy::Tenant;

const audit::Context k_mover{.actor_type = audit::ActorType::system, .actor_id = "tenant-move"};

// Each step done is logged; then the fault injection of core/failpoint.hpp: ATRIUM_FAILPOINTS
// "tenant_move.after_<step>=sleep:MS" holds the process there (crash tests kill it), and in process a ScopedFailure
// of that name stops the move there as a crash would.
Result<void> step_done(const std::string& tenant_id, std::string_view step) {
  log::info("tenant move step done", {{"tenant_id", tenant_id}, {"step", std::string(step)}});
  const std::string name = fmt::format("tenant_move.after_{}", step);
  failpoint(name);
  if (failing(name)) return fail(Errc::internal, fmt::format("the move stopped after {} (injected failure)", step));
  return {};
}

// The tenant as stored at `level`, for the mover's own transactions: never frozen for it, and its writes pass the
// fence of the store it leaves.
Tenant at_level(const Tenant& t, Isolation level) {
  Tenant view = t;
  view.isolation = level;
  view.move_state = MoveState::none;
  view.passes_fence = true;
  return view;
}

class Move {
 public:
  Move(Platform& platform, const MoveOptions& options)
      : p_(platform),
        options_(options),
        settle_(options.settle.count() >= 0
                    ? std::max(options.settle, std::chrono::milliseconds(platform.config().tenancy.cache_ttl_ms))
                    : std::chrono::milliseconds(platform.config().tenancy.cache_ttl_ms + 2000)) {}

  Result<MoveReport> run(const std::string& id, Isolation to) {
    auto t = p_.tenants->get(id);
    if (!t) return std::unexpected(t.error());
    if (t->status == tenancy::TenantStatus::deleted) return fail(Errc::conflict, "a deleted tenant cannot move");
    report_.to = to;
    report_.from = t->move_state == MoveState::switched ? t->move_level : t->isolation;
    switch (t->move_state) {
      case MoveState::none:
        if (t->isolation == to) {
          report_.already_there = true;
          return report_;
        }
        t = p_.tenants->set_move(id, MoveState::none, MoveState::copying, to);
        if (!t) return std::unexpected(t.error());
        log::info(
            "tenant move begun",
            {{"tenant_id", id}, {"from", tenancy::isolation_name(t->isolation)}, {"to", tenancy::isolation_name(to)}});
        break;
      case MoveState::copying:
      case MoveState::frozen:
      case MoveState::switched: {
        const Isolation target = t->move_state == MoveState::switched ? t->isolation : t->move_level;
        if (target != to) {
          return fail(Errc::conflict, fmt::format("tenant {} is moving to {}; finish that move first (--to {})", id,
                                                  tenancy::isolation_name(target), tenancy::isolation_name(target)));
        }
        break;
      }
    }
    if (t->move_state != MoveState::switched) {
      if (auto r = copy_and_switch(*t, to); !r) return std::unexpected(r.error());
    }
    auto switched = p_.tenants->get(id);
    if (!switched) return std::unexpected(switched.error());
    if (auto r = remove_old(*switched); !r) return std::unexpected(r.error());
    return report_;
  }

 private:
  void progress(std::string_view step, int done, int total) {
    if (options_.progress) options_.progress(step, done, total);
  }

  void settle() { std::this_thread::sleep_for(settle_); }

  Result<void> copy_and_switch(Tenant t, Isolation to) {
    const Tenant old_store = at_level(t, t.isolation);
    const Tenant new_store = at_level(t, to);
    const bool same = p_.tenant_data->same_store(old_store, new_store);
    if (t.move_state == MoveState::copying) {
      progress("provisioning", 0, 1);
      if (auto r = p_.tenant_data->provision(new_store); !r) return r;
      progress("provisioning", 1, 1);
      if (auto r = step_done(t.id, "provision"); !r) return r;
      if (!same) {
        auto copied = tenancy::sync_tables(*p_.tenant_data, old_store, new_store,
                                           [&](int done, int total) { progress("copying", done, total); });
        if (!copied) return std::unexpected(copied.error());
        report_.copied = copied->written;
      }
      if (auto r = step_done(t.id, "copy"); !r) return r;
      // Instances see the freeze within their tenant cache's life and refuse writes at once; the fence refuses
      // every write into the old store whatever an instance believes, and fence() returns once the writes that
      // began before it have ended.
      auto frozen = p_.tenants->set_move(t.id, MoveState::copying, MoveState::frozen, to);
      if (!frozen) return std::unexpected(frozen.error());
      t = std::move(*frozen);
      p_.directory->invalidate(t);
      if (auto r = step_done(t.id, "freeze"); !r) return r;
    }
    const auto frozen_at = std::chrono::steady_clock::now();
    if (!same) {
      progress("waiting for writes to end", 0, 1);
      if (auto r = p_.tenant_data->fence(old_store); !r) return r;
      progress("waiting for writes to end", 1, 1);
      if (auto r = final_copy(t, old_store, new_store); !r) return r;
    }
    if (auto r = step_done(t.id, "verify"); !r) return r;
    auto switched = p_.tenants->switch_level(t.id, to, p_.recorder(k_mover));
    if (!switched) return std::unexpected(switched.error());
    p_.directory->invalidate(*switched);
    report_.frozen =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - frozen_at);
    log::info(
        "tenant move switched",
        {{"tenant_id", t.id}, {"to", tenancy::isolation_name(to)}, {"writes_refused_ms", report_.frozen.count()}});
    return step_done(t.id, "switch");
  }

  // While frozen: the old store's outboxes into the control plane, the rows written since the first copy, and the
  // proof that both stores hold the same rows. A difference unfreezes the tenant (writes go on in the old store)
  // and fails the move, which can be run again.
  Result<void> final_copy(const Tenant& t, const Tenant& old_store, const Tenant& new_store) {
    if (auto r = p_.flush_audit(old_store); !r) return r;
    auto empty = tenancy::outboxes_empty(*p_.tenant_data, old_store);
    if (!empty) return std::unexpected(empty.error());
    if (!*empty) return fail(Errc::unavailable, "the old store's outboxes could not be emptied; run the move again");
    auto synced = tenancy::sync_tables(*p_.tenant_data, old_store, new_store,
                                       [&](int done, int total) { progress("copying the last writes", done, total); });
    if (!synced) return std::unexpected(synced.error());
    report_.synced = synced->written + synced->deleted;
    if (auto r = step_done(t.id, "sync"); !r) return r;
    auto before = tenancy::digest_tables(*p_.tenant_data, old_store);
    if (!before) return std::unexpected(before.error());
    auto after = tenancy::digest_tables(*p_.tenant_data, new_store);
    if (!after) return std::unexpected(after.error());
    if (*before != *after) {
      std::string differ;
      for (std::size_t i = 0; i < before->size() && i < after->size(); ++i) {
        if ((*before)[i] == (*after)[i]) continue;
        differ += fmt::format("{}{} ({} rows against {})", differ.empty() ? "" : ", ", (*before)[i].table,
                              (*before)[i].rows, (*after)[i].rows);
      }
      if (auto unfenced = p_.tenant_data->fence(old_store, false); !unfenced) return unfenced;
      auto thawed = p_.tenants->set_move(t.id, MoveState::frozen, MoveState::copying, new_store.isolation);
      if (thawed) p_.directory->invalidate(*thawed);
      return fail(Errc::internal, "the copy differs from the tenant's store in " + differ +
                                      "; writes resumed in the old store; run the move again");
    }
    report_.verified = std::move(*after);
    return {};
  }

  Result<void> remove_old(const Tenant& t) {
    const Tenant old_store = at_level(t, t.move_level);
    const Tenant new_store = at_level(t, t.isolation);
    if (!p_.tenant_data->same_store(old_store, new_store)) {
      progress("removing the old copy", 0, 1);
      settle();  // reads that began before the switch end in the old store
      // (A run stopped after the removal finds an own database or file gone: opening it would create it again.)
      auto there = p_.tenant_data->own_store_exists(old_store);
      if (!there) return std::unexpected(there.error());
      if (*there || p_.tenant_data->shares_control_plane(old_store)) {
        // Whatever a late transaction left in the old outboxes goes to the control plane before the store does.
        if (auto r = p_.flush_audit(old_store); !r) return r;
        if (auto r = p_.tenant_data->purge(old_store); !r) return r;
      }
      // The fence goes with the old store, or from the main database when the old store was there.
      if (p_.tenant_data->shares_control_plane(old_store)) {
        if (auto r = p_.tenant_data->fence(old_store, false); !r) return r;
      }
      progress("removing the old copy", 1, 1);
    }
    if (auto r = step_done(t.id, "remove"); !r) return r;
    auto done = p_.tenants->set_move(t.id, MoveState::switched, MoveState::none, t.isolation);
    if (!done) return std::unexpected(done.error());
    p_.directory->invalidate(*done);
    log::info("tenant move finished", {{"tenant_id", t.id}, {"isolation", tenancy::isolation_name(t.isolation)}});
    return {};
  }

  Platform& p_;
  const MoveOptions& options_;
  std::chrono::milliseconds settle_;
  MoveReport report_;
};

}  // namespace

Result<MoveReport> move_tenant(Platform& platform, const std::string& tenant_id, Isolation to,
                               const MoveOptions& options) {
  return Move(platform, options).run(tenant_id, to);
}

}  // namespace atrium::app
