-- Row-level security on more control-plane tables that carry a tenant (docs/security.md, Control-plane tables):
-- audit_logs, api_keys and jobs. As in 0009, each has a tenant policy on app.tenant_id (set by the tenant-scoped
-- transaction, or by tenancy::scope_to_tenant in a control-plane one) and a platform policy for the role running
-- this migration (the owner), admitting every row only inside the platform scope (app.platform_scope = 'on').
-- The serving role reaches across tenants only through the SECURITY DEFINER functions below, each owned by the
-- owner, with search_path pinned (pg_catalog, then pg_temp last; every table named with its schema). Each enters
-- the platform scope for its own statements and restores the caller's value before it returns (a function's SET
-- clause cannot name a placeholder variable without a superuser's grant; an error aborts the caller's statement,
-- and a savepoint rolled back restores the value too).

-- audit_logs: the serving role reads the entries of the tenant its transaction is scoped to, and appends only
-- through atrium_audit_append (so it cannot write an entry with a hash of its own choosing either). The platform
-- chain's entries have tenant_id NULL: no tenant policy admits them, only the platform scope.
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_tenant_isolation ON audit_logs FOR SELECT
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY audit_logs_platform_scope ON audit_logs AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

-- Appends one entry to its chain (src/audit/audit_log.cpp, AuditLog::append_entry): locks the chain's head, hashes
-- the entry over the same canonical content as entry_hash (each field as its byte length, ':' and its bytes, then
-- the previous hash), inserts it and moves the head; a chain's first entry creates its head. tenant '' = none.
CREATE FUNCTION atrium_audit_append(entry_id TEXT, chain TEXT, occurred TEXT, tenant TEXT, actor_kind TEXT,
                                    actor TEXT, ip TEXT, act TEXT, res_type TEXT, res_id TEXT, diff TEXT, agent TEXT,
                                    request TEXT, session_ref TEXT) RETURNS VOID
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  moved BIGINT;
  scope TEXT := coalesce(current_setting('app.platform_scope', true), '');
BEGIN
  PERFORM set_config('app.platform_scope', 'on', true);
  FOR attempt IN 1..2 LOOP
    WITH head AS (SELECT h.seq + 1 AS seq, h.hash AS prev_hash FROM public.audit_chain_heads h
                  WHERE h.chain_id = chain FOR UPDATE),
    entry AS (SELECT head.seq, head.prev_hash, encode(sha256(convert_to(
        octet_length(entry_id) || ':' || entry_id || octet_length(chain) || ':' || chain ||
        octet_length(head.seq::text) || ':' || head.seq::text || octet_length(occurred) || ':' || occurred ||
        octet_length(tenant) || ':' || tenant || octet_length(actor_kind) || ':' || actor_kind ||
        octet_length(actor) || ':' || actor || octet_length(ip) || ':' || ip || octet_length(act) || ':' || act ||
        octet_length(res_type) || ':' || res_type || octet_length(res_id) || ':' || res_id ||
        octet_length(diff) || ':' || diff || octet_length(agent) || ':' || agent ||
        octet_length(request) || ':' || request || octet_length(session_ref) || ':' || session_ref ||
        octet_length(head.prev_hash) || ':' || head.prev_hash, 'UTF8')), 'hex') AS hash FROM head),
    inserted AS (INSERT INTO public.audit_logs (id, chain_id, seq, occurred_at, tenant_id, actor_type, actor_id,
                   actor_ip, action, resource_type, resource_id, changes, user_agent, request_id, session_id,
                   prev_hash, hash)
                 SELECT entry_id::uuid, chain, entry.seq, occurred, nullif(tenant, '')::uuid, actor_kind, actor, ip,
                   act, res_type, res_id, diff, agent, request, session_ref, entry.prev_hash, entry.hash FROM entry
                 RETURNING seq, hash)
    UPDATE public.audit_chain_heads h SET seq = inserted.seq, hash = inserted.hash FROM inserted
      WHERE h.chain_id = chain;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved = 1 THEN
      PERFORM set_config('app.platform_scope', scope, true);
      RETURN;
    END IF;
    INSERT INTO public.audit_chain_heads (chain_id, seq, hash) VALUES (chain, 0, '') ON CONFLICT (chain_id) DO NOTHING;
  END LOOP;
  RAISE EXCEPTION 'audit chain head missing after creation';
END $$;

-- api_keys: the serving role manages a tenant's keys in that tenant's scope; authentication finds a key by its
-- prefix before any tenant is known, through atrium_api_key_by_prefix (one live key at most).
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant_isolation ON api_keys
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY api_keys_platform_scope ON api_keys AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

CREATE FUNCTION atrium_api_key_by_prefix(key_prefix TEXT)
  RETURNS TABLE (id UUID, tenant_id UUID, name TEXT, prefix TEXT, permissions JSONB, created_at TIMESTAMPTZ,
                 last_used_at TIMESTAMPTZ, secret_hash TEXT)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  scope TEXT := coalesce(current_setting('app.platform_scope', true), '');
BEGIN
  PERFORM set_config('app.platform_scope', 'on', true);
  RETURN QUERY SELECT k.id, k.tenant_id, k.name, k.prefix, k.permissions, k.created_at, k.last_used_at,
    k.secret_hash FROM public.api_keys k WHERE k.prefix = key_prefix AND k.revoked_at IS NULL;
  PERFORM set_config('app.platform_scope', scope, true);
END $$;

-- jobs: the job queue is platform work; src/jobs/sql_queue.cpp runs every transaction on the owner's pool in the
-- platform scope. The serving role has only the tenant policy (tenant_id is text here; '' = a platform job).
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY jobs_tenant_isolation ON jobs
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), ''));
CREATE POLICY jobs_platform_scope ON jobs AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
