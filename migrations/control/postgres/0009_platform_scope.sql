-- The platform scope replaces app.billing_platform, which any connection could set to read and write every tenant's
-- billing, usage and quota rows. Each tenant-carrying control-plane table keeps its tenant policy (app.tenant_id,
-- set by the tenant-scoped transaction) and gets a second, permissive policy that applies only to the role running
-- this migration: the owner role (storage.admin_database_url; the serving role only when one URL serves both). It
-- admits every row while the transaction is in the platform scope (app.platform_scope = 'on', set
-- transaction-locally by TenantData::transact_platform, src/tenancy/tenant_data.cpp). The serving role can set
-- the variable, but no policy of its own reads it, and it cannot SET ROLE to the owner.

ALTER POLICY billing_accounts_tenant_isolation ON billing_accounts
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY billing_accounts_platform_scope ON billing_accounts AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY test_clocks_tenant_isolation ON test_clocks
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY test_clocks_platform_scope ON test_clocks AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY subscriptions_tenant_isolation ON subscriptions
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY subscriptions_platform_scope ON subscriptions AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY invoices_tenant_isolation ON invoices
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY invoices_platform_scope ON invoices AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY invoice_lines_tenant_isolation ON invoice_lines
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY invoice_lines_platform_scope ON invoice_lines AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY payment_attempts_tenant_isolation ON payment_attempts
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY payment_attempts_platform_scope ON payment_attempts AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY credit_notes_tenant_isolation ON credit_notes
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY credit_notes_platform_scope ON credit_notes AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY usage_events_tenant_isolation ON usage_events
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY usage_events_platform_scope ON usage_events AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY usage_rollups_tenant_isolation ON usage_rollups
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY usage_rollups_platform_scope ON usage_rollups AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY quota_overrides_tenant_isolation ON quota_overrides
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY quota_overrides_platform_scope ON quota_overrides AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY quota_notices_tenant_isolation ON quota_notices
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY quota_notices_platform_scope ON quota_notices AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');

ALTER POLICY usage_billings_tenant_isolation ON usage_billings
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY usage_billings_platform_scope ON usage_billings AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
