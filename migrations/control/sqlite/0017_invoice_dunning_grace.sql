-- Hours of grace given to an invoice's dunning (Billing::extend_dunning, e.g. the churn service's dunning_grace
-- intervention): every remaining retry and the end of the dunning window fall that much later.
ALTER TABLE invoices ADD COLUMN dunning_grace_hours INTEGER NOT NULL DEFAULT 0;
