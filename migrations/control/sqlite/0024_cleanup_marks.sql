-- What the daily cleanup (system.cleanup, src/app/background.cpp) needs to cost O(tenants with work) instead of
-- O(tenants):
--   tenant_writes: when each tenant's store was last written (refreshed at most every few minutes per instance,
--     src/tenancy/store_writes.hpp); the cleanup visits the stores written within the longest retention.
--   usage_rollups (hour): the tenants and metrics with usage in an hour range, for expiring raw usage events.
--   cleanup_state: how far each part of the cleanup has gone (the usage events' last cutoff).
-- Every tenant not deleted is marked as written now, so the first cleanups visit each of them once more.
-- No foreign key: a row outlives its tenant's deletion harmlessly (the cleanup skips tenants deleted or gone).
CREATE TABLE tenant_writes (
  tenant_id TEXT PRIMARY KEY,
  written_at INTEGER NOT NULL
);
CREATE INDEX tenant_writes_written_at ON tenant_writes (written_at);
INSERT INTO tenant_writes (tenant_id, written_at)
  SELECT id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM tenants WHERE status <> 'deleted';

CREATE INDEX usage_rollups_hour ON usage_rollups (hour);

CREATE TABLE cleanup_state (
  name TEXT PRIMARY KEY,
  through INTEGER NOT NULL
);
