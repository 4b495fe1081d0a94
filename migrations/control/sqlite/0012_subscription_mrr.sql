-- The MRR ledger (src/billing/subscriptions/mrr.cpp, docs/analytics.md, SaaS metrics): one row each time a
-- subscription's monthly recurring revenue or status changes, written in the transaction that changes it, so MRR
-- on any past day, its movements and cohorts are read from the platform's own ledger. mrr is minor units of
-- `currency` per month: the period price (base plus extra seats) net of a recurring coupon in force for the current
-- period, normalised to a month (quarterly / 3, annual / 12, rounded half away from zero); 0 unless the status is
-- active or past_due. seq orders one subscription's rows; effective_at (Unix seconds) never goes back along them.
-- Subscriptions on a test clock are never recorded.
CREATE TABLE subscription_mrr (
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  subscription_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  effective_at BIGINT NOT NULL,
  status TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  plan_version INTEGER NOT NULL,
  seats BIGINT NOT NULL,
  currency TEXT NOT NULL,
  mrr BIGINT NOT NULL,
  recorded_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, subscription_id, seq)
);
CREATE INDEX subscription_mrr_by_time ON subscription_mrr (effective_at);

-- Subscriptions from before the ledger start with their current state at their creation, before any discount.
INSERT INTO subscription_mrr (tenant_id, subscription_id, seq, effective_at, status, plan_id, plan_version, seats,
                              currency, mrr, recorded_at)
SELECT s.tenant_id, s.id, 1, s.created_at, s.status, s.plan_id, s.plan_version, s.seats, v.currency,
       CASE WHEN s.status IN ('active', 'past_due') THEN
         ((v.base_price + MAX(s.seats - v.included_seats, 0) * v.seat_price) * 2
           + CASE v.billing_interval WHEN 'annual' THEN 12 WHEN 'quarterly' THEN 3 ELSE 1 END)
         / (2 * CASE v.billing_interval WHEN 'annual' THEN 12 WHEN 'quarterly' THEN 3 ELSE 1 END)
       ELSE 0 END,
       s.updated_at
FROM subscriptions s JOIN plan_versions v ON v.plan_id = s.plan_id AND v.version = s.plan_version
WHERE s.test_clock_id IS NULL;
