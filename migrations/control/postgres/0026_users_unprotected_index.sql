-- The accounts UserStore::protect_stored_accounts still has to seal or index, and only those: with this partial
-- index a start-up with nothing to protect reads no account rows (the pass used to scan every account). Its
-- predicate is the pass's own, word for word (src/identity/user_store.cpp, k_unsealed), so the planner can use it.
CREATE INDEX users_unprotected ON users (id)
  WHERE email_index IS NULL OR email NOT LIKE 'enc1:%' OR name NOT LIKE 'enc1:%';
