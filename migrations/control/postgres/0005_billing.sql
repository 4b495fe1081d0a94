-- Billing (src/billing/): the catalog (plans with versioned prices, coupons, tax rates) and, per tenant, the
-- billing account, subscriptions, invoices and their lines, payment attempts, credit notes and test clocks. Billing
-- is the platform's ledger about its tenants, so it lives in the control plane whatever a tenant's isolation
-- level; tenant rows carry tenant_id and are read through the tenant-scoped transaction. Times are Unix seconds;
-- money is integer minor units of the row's ISO 4217 currency.
CREATE TABLE billing_counters (
  name TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);

CREATE TABLE plans (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  tier TEXT NOT NULL CHECK (tier IN ('free', 'starter', 'professional', 'business', 'enterprise')),
  active BOOLEAN NOT NULL,
  current_version INTEGER NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE plan_versions (
  plan_id TEXT NOT NULL REFERENCES plans (id),
  version INTEGER NOT NULL,
  currency TEXT NOT NULL,
  billing_interval TEXT NOT NULL CHECK (billing_interval IN ('monthly', 'quarterly', 'annual')),
  base_price BIGINT NOT NULL,
  included_seats BIGINT NOT NULL,
  seat_price BIGINT NOT NULL,
  trial_days INTEGER NOT NULL,
  features TEXT NOT NULL,
  limits TEXT NOT NULL,
  metered_prices TEXT NOT NULL,
  dunning TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (plan_id, version)
);

CREATE TABLE coupons (
  id TEXT PRIMARY KEY,
  code TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  percent_off_bps BIGINT NOT NULL,
  amount_off BIGINT NOT NULL,
  currency TEXT NOT NULL,
  duration TEXT NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
  duration_months INTEGER NOT NULL,
  max_redemptions BIGINT,
  times_redeemed BIGINT NOT NULL,
  redeem_by BIGINT,
  active BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE tax_rates (
  id TEXT PRIMARY KEY,
  country TEXT NOT NULL,
  region TEXT NOT NULL,
  name TEXT NOT NULL,
  bps BIGINT NOT NULL,
  inclusive BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (country, region)
);

-- The simulated payment provider's own ledger (src/billing/gateway.cpp): what a real provider would remember.
CREATE TABLE simulated_charges (
  idempotency_key TEXT PRIMARY KEY,
  reference TEXT NOT NULL,
  kind TEXT NOT NULL,
  payment_method TEXT NOT NULL,
  amount BIGINT NOT NULL,
  currency TEXT NOT NULL,
  outcome TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE billing_accounts (
  tenant_id UUID PRIMARY KEY REFERENCES tenants (id),
  legal_name TEXT NOT NULL,
  email TEXT NOT NULL,
  address TEXT NOT NULL,
  country TEXT NOT NULL,
  region TEXT NOT NULL,
  currency TEXT NOT NULL,
  tax_ids TEXT NOT NULL,
  payment_method TEXT NOT NULL,
  credit_balance BIGINT NOT NULL,
  proration TEXT NOT NULL CHECK (proration IN ('daily', 'per_second')),
  test_mode BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE test_clocks (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  frozen_time BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE subscriptions (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  plan_version INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('trial', 'active', 'past_due', 'paused', 'cancelled', 'unpaid')),
  seats BIGINT NOT NULL,
  anchor BIGINT NOT NULL,
  cycle BIGINT NOT NULL,
  current_period_start BIGINT NOT NULL,
  current_period_end BIGINT NOT NULL,
  trial_end BIGINT,
  cancel_at_period_end BOOLEAN NOT NULL,
  cancelled_at BIGINT,
  paused_at BIGINT,
  coupon_id TEXT,
  coupon_start BIGINT,
  coupon_uses BIGINT NOT NULL,
  test_clock_id TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (tenant_id) WHERE status <> 'cancelled';
CREATE INDEX subscriptions_due ON subscriptions (current_period_end, tenant_id, id)
  WHERE status IN ('trial', 'active', 'past_due') AND test_clock_id IS NULL;

CREATE TABLE invoices (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  number TEXT UNIQUE,
  subscription_id TEXT,
  cycle_key TEXT UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
  billing_reason TEXT NOT NULL,
  currency TEXT NOT NULL,
  period_start BIGINT NOT NULL,
  period_end BIGINT NOT NULL,
  subtotal BIGINT NOT NULL,
  discount BIGINT NOT NULL,
  discount_label TEXT NOT NULL,
  tax BIGINT NOT NULL,
  tax_inclusive BOOLEAN NOT NULL,
  tax_label TEXT NOT NULL,
  total BIGINT NOT NULL,
  credit_applied BIGINT NOT NULL,
  credit_created BIGINT NOT NULL,
  amount_due BIGINT NOT NULL,
  amount_paid BIGINT NOT NULL,
  amount_remaining BIGINT NOT NULL,
  attempt_count INTEGER NOT NULL,
  next_payment_attempt BIGINT,
  customer TEXT NOT NULL,
  memo TEXT NOT NULL,
  test_clock_id TEXT,
  created_at BIGINT NOT NULL,
  finalized_at BIGINT,
  paid_at BIGINT,
  voided_at BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX invoices_by_tenant ON invoices (tenant_id, created_at, id);
CREATE INDEX invoices_by_subscription ON invoices (tenant_id, subscription_id, status);
CREATE INDEX invoices_retry ON invoices (next_payment_attempt)
  WHERE status = 'open' AND next_payment_attempt IS NOT NULL AND test_clock_id IS NULL;

CREATE TABLE invoice_lines (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  invoice_id TEXT NOT NULL,
  line_no INTEGER NOT NULL,
  kind TEXT NOT NULL,
  description TEXT NOT NULL,
  quantity BIGINT NOT NULL,
  unit_amount BIGINT NOT NULL,
  amount BIGINT NOT NULL,
  period_start BIGINT NOT NULL,
  period_end BIGINT NOT NULL,
  proration BOOLEAN NOT NULL,
  PRIMARY KEY (tenant_id, invoice_id, line_no)
);

CREATE TABLE payment_attempts (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  invoice_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  amount BIGINT NOT NULL,
  currency TEXT NOT NULL,
  payment_method TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  failure_code TEXT NOT NULL,
  decline TEXT NOT NULL,
  message TEXT NOT NULL,
  reference TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  completed_at BIGINT,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX payment_attempts_invoice ON payment_attempts (tenant_id, invoice_id, attempt);
CREATE INDEX payment_attempts_pending ON payment_attempts (created_at) WHERE status = 'pending';

CREATE TABLE credit_notes (
  tenant_id UUID NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  number TEXT NOT NULL UNIQUE,
  invoice_id TEXT NOT NULL,
  amount BIGINT NOT NULL,
  method TEXT NOT NULL CHECK (method IN ('refund', 'credit_balance', 'invoice')),
  reason TEXT NOT NULL,
  memo TEXT NOT NULL,
  reference TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX credit_notes_invoice ON credit_notes (tenant_id, invoice_id);
CREATE INDEX credit_notes_refund_pending ON credit_notes (created_at) WHERE method = 'refund' AND reference = '';

-- Tenant rows: a tenant-scoped transaction sees its own (app.tenant_id); the platform's billing run and catalog
-- work set app.billing_platform = 'on' in their transaction (src/billing/billing.cpp).
ALTER TABLE billing_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY billing_accounts_tenant_isolation ON billing_accounts
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE test_clocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE test_clocks FORCE ROW LEVEL SECURITY;
CREATE POLICY test_clocks_tenant_isolation ON test_clocks
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY subscriptions_tenant_isolation ON subscriptions
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY invoices_tenant_isolation ON invoices
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE invoice_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY invoice_lines_tenant_isolation ON invoice_lines
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE payment_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payment_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY payment_attempts_tenant_isolation ON payment_attempts
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
ALTER TABLE credit_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY credit_notes_tenant_isolation ON credit_notes
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
         OR current_setting('app.billing_platform', true) = 'on')
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
              OR current_setting('app.billing_platform', true) = 'on');
