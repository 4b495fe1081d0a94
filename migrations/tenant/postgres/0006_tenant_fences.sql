-- Fences of a tenant's store at one isolation level while the tenant moves to another (src/app/tenant_move.hpp).
-- Every write transaction into a tenant's store starts with atrium_write_scope, which takes the tenant's write lock
-- shared and refuses (SQLSTATE 55006, object_in_use) when the level it writes at is fenced in this database; the
-- mover inserts the fence, then takes the lock exclusively once, so no write that began before the fence commits
-- after it. The shared and schema levels use the main database's public table; a database-level tenant its own
-- database's. (A schema-level tenant's own schema gets an unused copy of the table: tenant migrations run there.)
CREATE TABLE tenant_fences (
  tenant_id UUID NOT NULL,
  isolation TEXT NOT NULL,
  fenced_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (tenant_id, isolation)
);
ALTER TABLE tenant_fences ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_fences FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_fences_tenant_isolation ON tenant_fences
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

CREATE OR REPLACE FUNCTION atrium_write_scope(tenant TEXT, level TEXT) RETURNS VOID
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.tenant_id', tenant, true);
  PERFORM pg_advisory_xact_lock_shared(1096045620, hashtext(tenant));
  IF EXISTS (SELECT 1 FROM public.tenant_fences f WHERE f.tenant_id = tenant::uuid AND f.isolation = level) THEN
    RAISE EXCEPTION 'tenant % is moving away from the % level', tenant, level USING ERRCODE = '55006';
  END IF;
END $$;
