-- The headers an Idempotency-Key replay repeats (src/tenancy/idempotency.hpp): Location, ETag and Last-Modified
-- of the first answer, as a JSON object; '' for answers stored before this column (replayed without them).
ALTER TABLE idempotency_keys ADD COLUMN response_headers TEXT NOT NULL DEFAULT '';
