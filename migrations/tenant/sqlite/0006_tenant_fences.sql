-- Fences of a tenant's store at one isolation level while the tenant moves to another (src/app/tenant_move.hpp).
-- Every write transaction into a tenant's store (BEGIN IMMEDIATE: one writer at a time) first looks for a fence of
-- the level it writes at and is refused when there is one, so no write lands in a store after the mover fenced it.
CREATE TABLE tenant_fences (
  tenant_id TEXT NOT NULL,
  isolation TEXT NOT NULL,
  fenced_at TEXT NOT NULL,
  PRIMARY KEY (tenant_id, isolation)
);
