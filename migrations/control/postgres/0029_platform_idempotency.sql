-- Idempotency-Key on the platform's own routes (super admins: plans, coupons, churn interventions, reports, the
-- billing run...; src/tenancy/idempotency.hpp): a key is used once per super admin (principal, the user id), for one
-- operation and one request body. A tenant route's keys stay in the tenant's own idempotency_keys. No tenant_id: the
-- rows are the platform's, read only by the super admin routes.
CREATE TABLE platform_idempotency_keys (
  principal TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  operation TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  status INTEGER NOT NULL,
  response_body TEXT NOT NULL,
  response_headers TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX platform_idempotency_keys_created ON platform_idempotency_keys (created_at);
