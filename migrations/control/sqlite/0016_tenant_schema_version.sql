-- How far each tenant's own schema, database or file is migrated (the tenant series), so `atrium migrate` and
-- serve's start visit only the tenants behind this build instead of every tenant (TenantStore::list_behind).
ALTER TABLE tenants ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tenants_behind ON tenants (schema_version) WHERE isolation <> 'shared' AND status <> 'deleted';
