-- Product events (src/analytics/, docs/analytics.md) go through usage ingestion as usage events whose metric is
-- "event:<type>"; user_id names whom such an event is about (NULL for usage events and anonymous product events),
-- so that active users, adoption and time to first value count people with plain SQL.
ALTER TABLE usage_events ADD COLUMN user_id TEXT;
CREATE INDEX usage_events_user ON usage_events (tenant_id, user_id, ts) WHERE user_id IS NOT NULL;
