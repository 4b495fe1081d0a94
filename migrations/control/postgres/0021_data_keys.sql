-- Per-tenant data keys for fields encrypted at rest (src/protection/, docs/data-protection.md). Each row is one
-- version of a tenant's AES-256-GCM data key, wrapped by the tenant's key-encryption key in the key service (never
-- in this database): a copy of this table without the key service opens nothing, and destroying the tenant's key
-- there (a purge) makes every copy of its fields unreadable. One active version per tenant seals; every version
-- still listed opens. Row-level security as on the other control-plane tenant tables.
CREATE TABLE data_keys (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  version INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  wrapped TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  retired_at BIGINT,
  PRIMARY KEY (tenant_id, version)
);
CREATE UNIQUE INDEX data_keys_active ON data_keys (tenant_id) WHERE state = 'active';

ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY data_keys_tenant_isolation ON data_keys
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY data_keys_platform_scope ON data_keys AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
