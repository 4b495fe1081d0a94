-- Row-level security on refresh_tokens, as 0010 did for audit_logs, api_keys and jobs. A refresh token of a super
-- admin signed in without a tenant has tenant_id NULL: such rows belong to no tenant, and only a transaction scoped
-- to no tenant sees them (never a tenant's). A token is found by its hash before its tenant is known, through
-- atrium_refresh_token_by_hash (owner, SECURITY DEFINER, search_path pinned, the platform scope for its own
-- statement only); using it and revoking its family then run scoped to the token's tenant
-- (src/identity/token_service.cpp).
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY refresh_tokens_tenant_isolation ON refresh_tokens
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR (tenant_id IS NULL AND nullif(current_setting('app.tenant_id', true), '') IS NULL))
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR (tenant_id IS NULL AND nullif(current_setting('app.tenant_id', true), '') IS NULL));
CREATE POLICY refresh_tokens_platform_scope ON refresh_tokens AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

CREATE FUNCTION atrium_refresh_token_by_hash(hash TEXT)
  RETURNS TABLE (id UUID, family_id UUID, user_id UUID, tenant_id UUID, expires_at TIMESTAMPTZ, used_at TIMESTAMPTZ,
                 revoked_at TIMESTAMPTZ)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  scope TEXT := coalesce(current_setting('app.platform_scope', true), '');
BEGIN
  PERFORM set_config('app.platform_scope', 'on', true);
  RETURN QUERY SELECT r.id, r.family_id, r.user_id, r.tenant_id, r.expires_at, r.used_at, r.revoked_at
    FROM public.refresh_tokens r WHERE r.token_hash = hash;
  PERFORM set_config('app.platform_scope', scope, true);
END $$;
