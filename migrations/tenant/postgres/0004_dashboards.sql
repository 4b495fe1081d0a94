-- Custom dashboards (src/analytics/dashboards.hpp): a tenant's named compositions of widgets, shown by the web
-- console and its embed view. `widgets` is the validated JSON array; `version` counts updates (ETag).
CREATE TABLE dashboards (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  widgets TEXT NOT NULL,
  version BIGINT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
);

ALTER TABLE dashboards ENABLE ROW LEVEL SECURITY;
ALTER TABLE dashboards FORCE ROW LEVEL SECURITY;
CREATE POLICY dashboards_tenant_isolation ON dashboards
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
