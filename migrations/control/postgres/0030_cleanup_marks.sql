-- What the daily cleanup (system.cleanup, src/app/background.cpp) needs to cost O(tenants with work) instead of
-- O(tenants):
--   tenant_writes: when each tenant's store was last written (refreshed at most every few minutes per instance,
--     src/tenancy/store_writes.hpp); the cleanup visits the stores written within the longest retention.
--   usage_rollups (hour): the tenants and metrics with usage in an hour range, for expiring raw usage events.
--   cleanup_state: how far each part of the cleanup has gone (the usage events' last cutoff).
-- Every tenant not deleted is marked as written now, so the first cleanups visit each of them once more.
-- No foreign key: a row outlives its tenant's deletion harmlessly (the cleanup skips tenants deleted or gone).
CREATE TABLE tenant_writes (
  tenant_id UUID PRIMARY KEY,
  written_at BIGINT NOT NULL
);
CREATE INDEX tenant_writes_written_at ON tenant_writes (written_at);
INSERT INTO tenant_writes (tenant_id, written_at)
  SELECT id, (extract(epoch FROM now()) * 1000)::bigint FROM tenants WHERE status <> 'deleted';

ALTER TABLE tenant_writes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_writes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_writes_tenant_isolation ON tenant_writes
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY tenant_writes_platform_scope ON tenant_writes AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

CREATE INDEX usage_rollups_hour ON usage_rollups (hour);

CREATE TABLE cleanup_state (
  name TEXT PRIMARY KEY,
  through BIGINT NOT NULL
);
