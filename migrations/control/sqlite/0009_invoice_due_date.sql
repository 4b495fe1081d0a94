-- The due date of an invoice (the seed's Invoice.dates.due): finalization time plus billing.days_until_due, fixed
-- when the invoice is finalized so a later change of the setting does not move it. NULL for drafts, and for
-- invoices finalized before this migration (their documents compute it from the setting, as before).
ALTER TABLE invoices ADD COLUMN due_at BIGINT;
