-- The keyed blind index of a user's address (identity::AccountProtection: HMAC-SHA-256 under a key derived from the
-- master key), so sign-in by email finds the account while users.email and users.name hold AES-256-GCM
-- ciphertexts. Rows from before are indexed (and sealed) at start-up (UserStore::protect_stored_accounts). The
-- unique constraint on users.email stays but no longer decides anything: ciphertexts never repeat; this one does.
ALTER TABLE users ADD COLUMN email_index TEXT;
CREATE UNIQUE INDEX users_email_index ON users (email_index);
