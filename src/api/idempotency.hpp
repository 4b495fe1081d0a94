#pragma once

#include "http/dispatcher.hpp"

namespace atrium::api {

class Services;

// Idempotency-Key on every route that changes something with POST or PATCH (run on the worker pool) and does not
// read the key itself (RouteOptions::own_idempotency): tenant routes keep their keys in the tenant's
// idempotency_keys, the platform's own routes (super admins) in the control plane's platform_idempotency_keys, per
// super admin. The key is taken before the handler runs; a 2xx answer is then kept under it, any other answer
// releases it (nothing changed; the request may be retried with the key). A repeat with the same key, route and body
// is answered from the kept answer (`Idempotent-Replayed: true`); the same key with another route or body is 422
// idempotency-key-reused; a key whose request is still running — or was interrupted after the handler ran and
// before its answer was kept — is 409 idempotency-key-in-use with Retry-After, never a second run. Place it after
// the security middleware.
http::Middleware idempotency_middleware(Services& services);

}  // namespace atrium::api
