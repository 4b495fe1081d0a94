-- Usage metering (src/metering/): raw usage events per tenant, their hourly roll-ups, and the platform's meter
-- catalog. Like billing, metering is the platform's ledger about its tenants, so it lives in the control plane
-- whatever a tenant's isolation level; tenant rows carry tenant_id and are read through the tenant-scoped
-- transaction. Times are Unix milliseconds (UTC); quantities are integers in the metric's own unit (requests,
-- bytes, seconds, ...: a fractional unit is metered in a smaller one).
--
-- usage_events: one row per accepted event. The primary key is the deduplication: an event whose idempotency key
-- the tenant already used is acknowledged and not stored again, for as long as the row is kept
-- (metering.retain_events_days, at least 35). WITHOUT ROWID: the key is the table, one B-tree fewer per insert.
CREATE TABLE usage_events (
  tenant_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  metric TEXT NOT NULL,
  quantity BIGINT NOT NULL,
  ts BIGINT NOT NULL,
  properties TEXT NOT NULL,
  received_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX usage_events_metric_ts ON usage_events (tenant_id, metric, ts);

-- Per tenant, metric and UTC hour (hour = Unix ms of the hour's start): what sum, count, max and latest need,
-- folded from the events of each ingestion in the same transaction. latest_* is the event with the greatest ts
-- (ties: the greatest quantity).
CREATE TABLE usage_rollups (
  tenant_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  hour BIGINT NOT NULL,
  event_count BIGINT NOT NULL,
  quantity_sum BIGINT NOT NULL,
  quantity_max BIGINT NOT NULL,
  latest_ts BIGINT NOT NULL,
  latest_value BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, metric, hour)
) WITHOUT ROWID;

-- The platform's meter catalog: how a metric is aggregated by default (sum | count | max | unique_count of
-- `property` | latest) and which events it counts (filters: a JSON object of property -> value, all must match).
CREATE TABLE meters (
  id TEXT PRIMARY KEY,
  metric TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  aggregation TEXT NOT NULL CHECK (aggregation IN ('sum', 'count', 'max', 'unique_count', 'latest')),
  property TEXT NOT NULL,
  filters TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
