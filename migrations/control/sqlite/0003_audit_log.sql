-- Audit log: append-only and hash-chained. Every entry belongs to one chain (its tenant's id, or 'platform');
-- `seq` numbers a chain from 1 and `hash` = SHA-256 over the entry's canonical content and the previous entry's
-- hash (src/audit/audit_log.cpp), so `atrium audit verify` finds any entry altered, removed or reordered.
-- WITHOUT ROWID: the table is its (chain_id, seq) key, so an append writes two B-trees (the table and the id
-- index), not four.
CREATE TABLE audit_logs (
  chain_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  id TEXT NOT NULL,
  occurred_at TEXT NOT NULL,
  tenant_id TEXT,
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
) WITHOUT ROWID;
CREATE UNIQUE INDEX audit_logs_id ON audit_logs (id);

CREATE TABLE audit_chain_heads (
  chain_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);

-- Tenants that exist before the audit log get an empty chain, so every tenant has one (verify checks).
INSERT INTO audit_chain_heads (chain_id, seq, hash) SELECT CAST(id AS TEXT), 0, '' FROM tenants;

CREATE TABLE audit_export_cursors (
  sink TEXT NOT NULL,
  chain_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (sink, chain_id)
);

-- Append-only: UPDATE is refused; DELETE only while the retention job's transaction has opened the gate.
CREATE TABLE audit_retention_gate (open INTEGER NOT NULL);
INSERT INTO audit_retention_gate (open) VALUES (0);
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
  SELECT RAISE(ABORT, 'audit_logs is append-only (UPDATE refused)');
END;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
  WHEN (SELECT open FROM audit_retention_gate) = 0
BEGIN
  SELECT RAISE(ABORT, 'audit_logs is append-only (DELETE refused)');
END;
