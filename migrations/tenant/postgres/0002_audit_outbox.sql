-- Audit entries of changes to a tenant whose data lives in its own database: written in the transaction of the
-- change, then moved to the control plane's hash-chained audit_logs by the relay (src/audit/audit_log.cpp).
-- Unused for tenants whose data shares the control plane's database (their entries go to audit_logs at once).
CREATE TABLE audit_outbox (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id UUID NOT NULL,
  entry TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
ALTER TABLE audit_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_outbox_tenant_isolation ON audit_outbox
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
