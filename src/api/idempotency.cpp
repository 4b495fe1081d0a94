#include "api/idempotency.hpp"

#include "api/services.hpp"
#include "api/support.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "http/problem.hpp"
#include "identity/principal.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::api {

namespace {

// The headers of an answer a replay repeats: where the made thing is and which version of it.
constexpr std::string_view k_replayed_headers[] = {"Location", "ETag", "Last-Modified"};

// Where a request's key is kept: a tenant route's (and a super admin's acting in a tenant) in the tenant's
// idempotency_keys; a platform route's (super admins) in the control plane's platform_idempotency_keys, per super
// admin. Routes that change nothing (GET, PUT, DELETE: the same request twice leaves the same state) and those that
// read the key themselves take none here.
enum class Scope { none, tenant, platform };

Scope scope_of(const http::Request& req) {
  if ((req.method != http::Method::post && req.method != http::Method::patch) || req.options == nullptr ||
      req.options->own_idempotency || req.options->execution != http::Execution::worker ||
      !req.headers.get("Idempotency-Key").has_value()) {
    return Scope::none;
  }
  const auto access = req.options->access;
  if ((access == http::Access::tenant || access == http::Access::tenant_super_admin) && req.tenant != nullptr) {
    return Scope::tenant;
  }
  if (access == http::Access::super_admin && req.principal != nullptr && req.principal->super_admin) {
    return Scope::platform;
  }
  return Scope::none;
}

}  // namespace

http::Middleware idempotency_middleware(Services& services) {
  return [&services](http::Request& req, const http::Next& next) -> http::Response {
    const Scope scope = scope_of(req);
    if (scope == Scope::none) return next(req);
    auto key = idempotency_key(req);
    if (!key) return error_response(key.error(), req);
    const std::string operation = std::string(http::method_name(req.method)) + " " + req.route;
    const std::string request_hash = sha256_hex(req.body);
    const tenancy::IdempotentAnswer taking{operation, request_hash, 0, ""};

    // Take the key, or find what holds it (a concurrent request may take it between our read and insert).
    std::optional<tenancy::IdempotentAnswer> prior;
    auto take = [&]() -> Result<void> {
      if (scope == Scope::tenant) {
        return services.tenant_data->transact(*req.tenant, [&](tenancy::TenantTransaction& tx) -> Result<void> {
          auto found = tenancy::find_answer(tx, **key);
          if (!found) return std::unexpected(found.error());
          prior = std::move(*found);
          if (prior) return {};
          return tenancy::store_answer(tx, **key, taking, services.clock().now());
        });
      }
      return services.db().transact([&](storage::Transaction& tx) -> Result<void> {
        auto found = tenancy::find_platform_answer(tx, req.principal->subject, **key);
        if (!found) return std::unexpected(found.error());
        prior = std::move(*found);
        if (prior) return {};
        return tenancy::take_platform_answer(tx, req.principal->subject, **key, taking, services.clock().now());
      });
    };
    Result<void> taken;
    for (int attempt = 0; attempt < 2; ++attempt) {
      taken = take();
      if (taken || taken.error().code != Errc::unique_violation) break;
    }
    if (!taken) return error_response(taken.error(), req);
    if (prior) {
      if (prior->operation != operation || prior->request_hash != request_hash) {
        return http::problem(422, "idempotency-key-reused", "Idempotency-Key Reused",
                             "This Idempotency-Key was used with a different request.", req);
      }
      if (prior->status == 0) {
        auto busy =
            http::problem(409, "idempotency-key-in-use", "Idempotency-Key In Use",
                          "A request with this Idempotency-Key is in progress, or was interrupted after it ran; "
                          "it is not run again.",
                          req);
        busy.headers.set("Retry-After", "1");
        return busy;
      }
      http::Response replay = prior->body.empty()
                                  ? http::Response::text(prior->status, "")
                                  : http::Response::text(prior->status, prior->body, "application/json");
      for (const auto& [name, value] : prior->headers) replay.headers.set(name, value);
      replay.headers.set("Idempotent-Replayed", "true");
      return replay;
    }

    http::Response res = next(req);
    const bool kept = res.status >= 200 && res.status < 300;
    tenancy::IdempotentAnswer answer{.status = res.status, .body = res.body};
    for (std::string_view name : k_replayed_headers) {
      if (auto value = res.headers.get(name)) answer.headers.emplace_back(std::string(name), std::string(*value));
    }
    auto done = scope == Scope::tenant
                    ? services.tenant_data->transact(*req.tenant,
                                                     [&](tenancy::TenantTransaction& tx) -> Result<void> {
                                                       return kept ? tenancy::complete_answer(tx, **key, answer)
                                                                   : tenancy::release_answer(tx, **key);
                                                     })
                    : services.db().transact([&](storage::Transaction& tx) -> Result<void> {
                        const std::string& who = req.principal->subject;
                        return kept ? tenancy::complete_platform_answer(tx, who, **key, answer)
                                    : tenancy::release_platform_answer(tx, who, **key);
                      });
    if (!done) {
      // The key stays in progress: a retry is answered 409 until it expires, never run twice.
      log::warn("an Idempotency-Key answer was not kept",
                {{"tenant_id", req.tenant != nullptr ? req.tenant->id : std::string()},
                 {"route", operation},
                 {"error", done.error().message}});
    }
    return res;
  };
}

}  // namespace atrium::api
