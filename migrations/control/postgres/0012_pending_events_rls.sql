-- Row-level security on pending_events, as 0010 did for audit_logs, api_keys and jobs: a domain event is written
-- in its tenant's transaction (or one scoped to that tenant: the tenant lifecycle's, and the copy from a tenant's
-- own event_outbox), and read and deleted by the relay, which is platform work: src/events/outbox.cpp runs it on
-- the owner's pool in the platform scope. tenant_id is text here.
ALTER TABLE pending_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_events FORCE ROW LEVEL SECURITY;
CREATE POLICY pending_events_tenant_isolation ON pending_events
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), ''))
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), ''));
CREATE POLICY pending_events_platform_scope ON pending_events AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
