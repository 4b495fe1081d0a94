-- Row-level security on the last control-plane tables that carry a tenant: memberships and invitations (users'
-- links to tenants), as 0010 did for audit_logs, api_keys and jobs, then the audit chains' heads and export
-- cursors. Every statement of src/identity/user_store.cpp and src/identity/invitations.cpp runs in a transaction
-- scoped to the tenant it names (tenancy::scope_to_tenant); an invitation is accepted in the scope of the tenant its
-- token carries. The one statement that counts across tenants (the platform statistics) goes through
-- atrium_membership_count below. Last, EXECUTE on the functions is taken from PUBLIC.
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY memberships_tenant_isolation ON memberships
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY memberships_platform_scope ON memberships AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY invitations_tenant_isolation ON invitations
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY invitations_platform_scope ON invitations AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

-- The audit chains' heads and the SIEM exporter's cursors are keyed by chain (a tenant's id, or 'platform'): seq and
-- hash only, but a tenant's head tells how many changes it made. Both are platform work: heads move only inside
-- atrium_audit_append (definer) and are read by verification and retention in the platform scope; the exporter keeps
-- its cursors there too (src/audit/exporter.cpp). The serving role has no policy on either.
ALTER TABLE audit_chain_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_heads_platform_scope ON audit_chain_heads AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
ALTER TABLE audit_export_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_export_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_export_cursors_platform_scope ON audit_export_cursors AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

-- Memberships of tenants that are not deleted, every tenant's (GET /v1/platform/stats): a count, no row.
CREATE FUNCTION atrium_membership_count() RETURNS BIGINT
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  scope TEXT := coalesce(current_setting('app.platform_scope', true), '');
  n BIGINT;
BEGIN
  PERFORM set_config('app.platform_scope', 'on', true);
  SELECT count(*) INTO n FROM public.memberships m JOIN public.tenants t ON t.id = m.tenant_id
    WHERE t.status <> 'deleted';
  PERFORM set_config('app.platform_scope', scope, true);
  RETURN n;
END $$;

-- Functions are executable by PUBLIC by default, so any role of the cluster could call the SECURITY DEFINER ones
-- (each reaches into the platform scope). Only the serving role may: atrium_grant_schema_to grants it EXECUTE on the
-- schema's functions with its table privileges (at every start, after the migrations), and functions made by later
-- migrations are not PUBLIC's either.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

-- As 0003's, plus EXECUTE on the schema's functions.
CREATE OR REPLACE FUNCTION atrium_grant_schema_to(schema_name TEXT, role_name TEXT) RETURNS VOID
  LANGUAGE plpgsql AS $$
BEGIN
  IF role_name = current_user THEN
    RETURN;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema_name, role_name);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', schema_name, role_name);
  EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', schema_name, role_name);
  IF schema_name = 'public' THEN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM %I', role_name);
  END IF;
END $$;
