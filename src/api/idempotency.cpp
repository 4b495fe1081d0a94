#include "api/idempotency.hpp"

#include "api/services.hpp"
#include "api/support.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "http/problem.hpp"
#include "tenancy/idempotency.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::api {

namespace {

// The headers of an answer a replay repeats: where the made thing is and which version of it.
constexpr std::string_view k_replayed_headers[] = {"Location", "ETag", "Last-Modified"};

bool applies(const http::Request& req) {
  return (req.method == http::Method::post || req.method == http::Method::patch) && req.options != nullptr &&
         !req.options->own_idempotency && req.options->access == http::Access::tenant &&
         req.options->execution == http::Execution::worker && req.tenant != nullptr &&
         req.headers.get("Idempotency-Key").has_value();
}

}  // namespace

http::Middleware idempotency_middleware(Services& services) {
  return [&services](http::Request& req, const http::Next& next) -> http::Response {
    if (!applies(req)) return next(req);
    auto key = idempotency_key(req);
    if (!key) return error_response(key.error(), req);
    const std::string operation = std::string(http::method_name(req.method)) + " " + req.route;
    const std::string request_hash = sha256_hex(req.body);
    tenancy::TenantData& data = *services.tenant_data;

    // Take the key, or find what holds it (a concurrent request may take it between our read and insert).
    std::optional<tenancy::IdempotentAnswer> prior;
    Result<void> taken;
    for (int attempt = 0; attempt < 2; ++attempt) {
      taken = data.transact(*req.tenant, [&](tenancy::TenantTransaction& tx) -> Result<void> {
        auto found = tenancy::find_answer(tx, **key);
        if (!found) return std::unexpected(found.error());
        prior = std::move(*found);
        if (prior) return {};
        return tenancy::store_answer(tx, **key, {operation, request_hash, 0, ""}, services.clock().now());
      });
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
    auto done = data.transact(*req.tenant, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      return kept ? tenancy::complete_answer(tx, **key, answer) : tenancy::release_answer(tx, **key);
    });
    if (!done) {
      // The key stays in progress: a retry is answered 409 until it expires, never run twice.
      log::warn("an Idempotency-Key answer was not kept",
                {{"tenant_id", req.tenant->id}, {"route", operation}, {"error", done.error().message}});
    }
    return res;
  };
}

}  // namespace atrium::api
