-- Audit log: append-only and hash-chained. Every entry belongs to one chain (its tenant's id, or 'platform');
-- `seq` numbers a chain from 1 and `hash` = SHA-256 over the entry's canonical content and the previous entry's
-- hash (src/audit/audit_log.cpp), so `atrium audit verify` finds any entry altered, removed or reordered.
-- Times are RFC 3339 UTC text with milliseconds: hashed as stored, sortable as text.
CREATE TABLE audit_logs (
  chain_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  id UUID NOT NULL,
  occurred_at TEXT NOT NULL,
  tenant_id UUID,
  actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'super_admin')),
  actor_id TEXT NOT NULL,
  actor_ip TEXT NOT NULL,
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  changes TEXT NOT NULL,
  user_agent TEXT NOT NULL,
  request_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (chain_id, seq)
);
CREATE UNIQUE INDEX audit_logs_id ON audit_logs (id);

-- The head of each chain: the last seq and hash. Appending locks this row, so entries of one chain are
-- numbered in commit order.
CREATE TABLE audit_chain_heads (
  chain_id TEXT PRIMARY KEY,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL
);

-- How far each SIEM sink has received each chain.
-- Tenants that exist before the audit log get an empty chain, so every tenant has one (verify checks).
INSERT INTO audit_chain_heads (chain_id, seq, hash) SELECT CAST(id AS TEXT), 0, '' FROM tenants;

CREATE TABLE audit_export_cursors (
  sink TEXT NOT NULL,
  chain_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY (sink, chain_id)
);

-- Append-only: UPDATE and TRUNCATE are refused for everyone; DELETE only inside the retention job's transaction
-- (which sets atrium.audit_retention and runs as the owner role: the serving role has no DELETE privilege).
CREATE FUNCTION atrium_audit_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('atrium.audit_retention', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_logs is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION atrium_audit_append_only();
CREATE TRIGGER audit_logs_no_truncate BEFORE TRUNCATE ON audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION atrium_audit_append_only();

-- The serving role gets DML on the schema's tables, except that audit_logs is INSERT and SELECT only.
CREATE OR REPLACE FUNCTION atrium_grant_schema_to(schema_name TEXT, role_name TEXT) RETURNS VOID
  LANGUAGE plpgsql AS $$
BEGIN
  IF role_name = current_user THEN
    RETURN;
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', schema_name, role_name);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I', schema_name, role_name);
  IF schema_name = 'public' THEN
    EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_logs FROM %I', role_name);
  END IF;
END $$;
