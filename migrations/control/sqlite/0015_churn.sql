-- Churn prediction (src/churn/, docs/ml.md): the model registry, each tenant's daily scores, and the interventions
-- applied to keep a customer, with their outcome. Super admins only (the routes); the scores and interventions carry
-- tenant_id (on PostgreSQL with the row-level security of the other control-plane tenant tables).
CREATE TABLE churn_models (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('trained', 'active', 'retired')),
  features TEXT NOT NULL,
  metrics TEXT NOT NULL,
  data_from BIGINT NOT NULL,
  data_to BIGINT NOT NULL,
  horizon_days INTEGER NOT NULL,
  training_rows BIGINT NOT NULL,
  positives BIGINT NOT NULL,
  model TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  activated_at BIGINT
);
-- At most one active model.
CREATE UNIQUE INDEX churn_models_active ON churn_models (status) WHERE status = 'active';

-- One score per tenant and UTC day (the day's last scoring wins), the history of the daily batch.
CREATE TABLE churn_scores (
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  day BIGINT NOT NULL,
  model_version INTEGER NOT NULL,
  probability REAL NOT NULL,
  risk_level TEXT NOT NULL CHECK (risk_level IN ('low', 'medium', 'high')),
  confidence REAL NOT NULL,
  factors TEXT NOT NULL,
  features TEXT NOT NULL,
  plan_tier TEXT NOT NULL,
  scored_at BIGINT NOT NULL,
  PRIMARY KEY (tenant_id, day)
);
CREATE INDEX churn_scores_day ON churn_scores (day);

CREATE TABLE churn_interventions (
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  id TEXT NOT NULL,
  kind TEXT NOT NULL,
  parameters TEXT NOT NULL,
  result TEXT NOT NULL,
  probability REAL,
  risk_level TEXT,
  model_version INTEGER,
  created_by TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  outcome TEXT CHECK (outcome IN ('retained', 'churned', 'downgraded', 'unknown')),
  outcome_note TEXT NOT NULL,
  outcome_at BIGINT,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX churn_interventions_created ON churn_interventions (created_at);

