-- An invitation's address, sealed under the account key like users.email (identity::AccountProtection) and found by
-- its keyed blind index: one pending invitation per tenant and address is now this index's rule. Invitations stored
-- before keep their plaintext address until they are accepted, revoked or expire (invitation_ttl_s).
ALTER TABLE invitations ADD COLUMN email_index TEXT;
CREATE UNIQUE INDEX invitations_email_index ON invitations (tenant_id, email_index);
