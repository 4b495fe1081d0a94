-- Background jobs (src/jobs/sql_queue.cpp): the SQL queue's jobs, the runner's completion records, the RabbitMQ
-- backend's idempotency keys, scheduler slots and leases, and the transactional outbox of domain events.
-- Times are Unix milliseconds.
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  type TEXT NOT NULL,
  tenant_id TEXT NOT NULL,
  payload TEXT NOT NULL,
  idempotency_key TEXT,
  priority INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
  run_at INTEGER NOT NULL,
  lease_token TEXT,
  lease_until INTEGER,
  attempts INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  last_error TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_leased ON jobs (queue, lease_until) WHERE state = 'running';
CREATE INDEX jobs_settled ON jobs (state, updated_at) WHERE state IN ('done', 'dead');

CREATE TABLE job_completions (
  job_id TEXT PRIMARY KEY,
  completed_at INTEGER NOT NULL
);
CREATE INDEX job_completions_at ON job_completions (completed_at);

CREATE TABLE job_keys (
  idempotency_key TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  published INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);

-- The last slot each schedule fired (a slot fires when this row moves forward to it, which happens once).
CREATE TABLE schedule_slots (
  name TEXT PRIMARY KEY,
  last_slot INTEGER NOT NULL
);

-- Leader leases: the scheduler runs on the instance holding the 'scheduler' lease.
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  until INTEGER NOT NULL
);

-- The transactional outbox: domain events waiting for the relay (src/events/), written in the transaction of the
-- change (tenants whose data lives in their own database or file first write to their own event_outbox, moved
-- here after the commit).
CREATE TABLE pending_events (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
