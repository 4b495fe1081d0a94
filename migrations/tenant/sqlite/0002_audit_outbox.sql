-- Audit entries of changes to a tenant whose data lives in its own file: written in the transaction of the
-- change, then moved to the control plane's hash-chained audit_logs by the relay (src/audit/audit_log.cpp).
CREATE TABLE audit_outbox (
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  entry TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
