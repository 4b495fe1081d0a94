-- Audit log: append-only and hash-chained. Every entry belongs to one chain (its tenant's id, or 'platform');
-- `seq` numbers a chain from 1 and `hash` = SHA-256 over the entry's canonical content and the previous entry's
-- hash (src/audit/audit_log.cpp), so `atrium audit verify` finds any entry altered, removed or reordered.
CREATE TABLE audit_logs (
  id TEXT PRIMARY KEY,
  chain_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
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
  UNIQUE (chain_id, seq)
);
CREATE INDEX audit_logs_chain_id ON audit_logs (chain_id, id);

CREATE TABLE audit_chain_heads (
  chain_id TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL
);

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
