-- Invitations (src/identity/invitations.*): adding a person to a tenant is an invitation mailed to the address,
-- accepted with its token, so that nothing tells the inviting tenant whether the address has an account elsewhere.
-- Only pending invitations are kept: accepting or revoking one deletes its row (the audit log keeps the history).
-- The token is stored as its SHA-256; it carries the tenant id, so it is looked up inside that tenant's rows.
CREATE TABLE invitations (
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  email TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
  token_hash TEXT NOT NULL,
  invited_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, email)
);
CREATE UNIQUE INDEX invitations_token ON invitations (token_hash);

-- Whether the invoice that opened a subscription's current period carried its coupon (docs/billing.md, Coupons):
-- changes within the period are prorated at what that invoice charged. NULL on rows from before this migration.
ALTER TABLE subscriptions ADD COLUMN period_discounted INTEGER;
-- Existing subscriptions with a once coupon: the current period is discounted when an invoice for exactly this
-- period (start and end) carried a discount, which only the invoice that used the coupon does. (An interval change
-- in the second of subscribing starts a period with the same start but another end.) Other coupons' rows stay
-- NULL: their rule depends on the period's start alone, and the code derives it.
UPDATE subscriptions SET period_discounted = CASE WHEN EXISTS (
    SELECT 1 FROM invoices i WHERE i.tenant_id = subscriptions.tenant_id AND i.subscription_id = subscriptions.id
      AND i.period_start = subscriptions.current_period_start AND i.period_end = subscriptions.current_period_end
      AND i.discount > 0) THEN 1 ELSE 0 END
  WHERE coupon_id IN (SELECT id FROM coupons WHERE duration = 'once');
