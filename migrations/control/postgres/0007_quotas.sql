-- Quotas and metered billing (src/billing/entitlements.*, src/billing/billing.cpp). Control plane, like billing and
-- metering; tenant rows carry tenant_id and are read through the tenant-scoped transaction.
--
-- plan_versions.quotas: the plan version's explicit quotas, a JSON object of name -> {"metric", "limit",
-- "enforcement"} (docs/quotas.md). Versioned with the prices: a change makes a new version.
ALTER TABLE plan_versions ADD COLUMN quotas TEXT NOT NULL DEFAULT '{}';

-- A tenant's override of one quota (or a quota its plan does not have). limit_value NULL = unlimited; metric ''
-- = a resource Atrium counts itself (projects).
CREATE TABLE quota_overrides (
  tenant_id UUID NOT NULL,
  name TEXT NOT NULL,
  metric TEXT NOT NULL,
  limit_value BIGINT,
  enforcement TEXT NOT NULL CHECK (enforcement IN ('soft', 'hard')),
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, name)
);

-- Threshold notices: one row per tenant, quota, period (its start, Unix ms) and threshold (80, 100). The key is
-- what makes a threshold event fire once per period.
CREATE TABLE quota_notices (
  tenant_id UUID NOT NULL,
  name TEXT NOT NULL,
  period_start BIGINT NOT NULL,
  threshold INTEGER NOT NULL,
  used BIGINT NOT NULL,
  limit_value BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, name, period_start, threshold)
);

-- Metered usage per subscription, metric and period (Unix seconds): the quantity last measured, the allowance a
-- soft quota included, the metered price (JSON), the amount that quantity costs, and what invoices billed so far.
-- A row stays open (settled = false) while late events for its period can be accepted (open_until = its end plus
-- the grace); each renewal re-measures open rows and bills the difference, and the billing run measures a row a
-- last time once its grace ended (the next renewal bills what that changed).
CREATE TABLE usage_billings (
  tenant_id UUID NOT NULL,
  subscription_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  period_start BIGINT NOT NULL,
  period_end BIGINT NOT NULL,
  quantity BIGINT NOT NULL,
  included BIGINT NOT NULL,
  price TEXT NOT NULL,
  amount BIGINT NOT NULL,
  billed_quantity BIGINT NOT NULL,
  billed_amount BIGINT NOT NULL,
  open_until BIGINT NOT NULL,
  invoice_id TEXT NOT NULL,
  settled BOOLEAN NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, subscription_id, metric, period_start)
);
CREATE INDEX usage_billings_open ON usage_billings (tenant_id, subscription_id)
  WHERE NOT settled OR amount <> billed_amount;
CREATE INDEX usage_billings_due ON usage_billings (open_until) WHERE NOT settled;

ALTER TABLE quota_overrides ENABLE ROW LEVEL SECURITY;
ALTER TABLE quota_overrides FORCE ROW LEVEL SECURITY;
CREATE POLICY quota_overrides_tenant_isolation ON quota_overrides
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE quota_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE quota_notices FORCE ROW LEVEL SECURITY;
CREATE POLICY quota_notices_tenant_isolation ON quota_notices
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE usage_billings ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_billings FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_billings_tenant_isolation ON usage_billings
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
