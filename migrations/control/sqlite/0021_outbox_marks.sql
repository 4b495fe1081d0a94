-- Tenants whose own file may hold outbox rows (audit_outbox, event_outbox) not yet carried to the control plane
-- (src/tenancy/outbox_marks.hpp). A read-write transaction of such a tenant marks it first, so the sweep that
-- carries what an interrupted move left visits the tenants that wrote, not every tenant. The tenants that may
-- hold such rows today are marked once here.
CREATE TABLE outbox_marks (
  tenant_id TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  marked_at INTEGER NOT NULL
);
INSERT INTO outbox_marks (tenant_id, marked_at)
  SELECT id, 0 FROM tenants WHERE isolation <> 'shared' AND status <> 'deleted';
