-- Product events (src/analytics/, docs/analytics.md) go through usage ingestion as usage events whose metric is
-- "event:<type>"; user_id names whom such an event is about (NULL for usage events and anonymous product events),
-- so that active users, adoption and time to first value count people with plain SQL. The table's row-level
-- security policies cover the new column as they cover the rest of the row.
ALTER TABLE usage_events ADD COLUMN user_id TEXT;
-- No index on it: a partial index (tenant_id, user_id, ts) cut product event ingestion on SQLite from 206k to 78k
-- events/s (docs/performance.md). The product metrics read a tenant's events of the range; the warehouse is where
-- heavier reading goes.
