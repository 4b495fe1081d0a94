-- Tenants whose own database may hold outbox rows (audit_outbox, event_outbox) not yet carried to the control plane
-- (src/tenancy/outbox_marks.hpp). A read-write transaction of such a tenant marks it first, so the sweep that
-- carries what an interrupted move left visits the tenants that wrote, not every tenant. The tenants that may
-- hold such rows today are marked once here (before row-level security, which the migration's role would meet).
CREATE TABLE outbox_marks (
  tenant_id UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  marked_at BIGINT NOT NULL
);
INSERT INTO outbox_marks (tenant_id, marked_at)
  SELECT id, 0 FROM tenants WHERE isolation = 'database' AND status <> 'deleted';

ALTER TABLE outbox_marks ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_marks FORCE ROW LEVEL SECURITY;
CREATE POLICY outbox_marks_tenant_isolation ON outbox_marks
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY outbox_marks_platform_scope ON outbox_marks AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
