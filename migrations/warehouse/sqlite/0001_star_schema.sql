-- The analytics warehouse (src/warehouse/, docs/analytics.md, Warehouse): a star schema in its own database, loaded
-- by the ETL from the control plane. Dates are date keys YYYYMMDD (UTC days); money is integer minor units of the
-- row's currency; times are Unix seconds. Every fact is partitioned by its date_key: the ETL replaces whole days,
-- which is what makes a repeated or resumed run give the same tables.

-- Where the ETL stands: the first day not loaded yet (days from it on, and `lookback` days before it, are loaded
-- again by the next run; never before first_day, the first day ever loaded), and one row per run. Days are days
-- since the epoch.
CREATE TABLE etl_state (
  name TEXT PRIMARY KEY,
  next_day BIGINT NOT NULL,
  first_day BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE TABLE etl_runs (
  id TEXT PRIMARY KEY,
  started_at BIGINT NOT NULL,
  finished_at BIGINT,
  from_day BIGINT NOT NULL,
  to_day BIGINT NOT NULL,
  source_rows BIGINT NOT NULL,
  status TEXT NOT NULL
);

-- Dimensions.
CREATE TABLE dim_date (
  date_key INTEGER PRIMARY KEY,
  date TEXT NOT NULL,
  year INTEGER NOT NULL,
  quarter INTEGER NOT NULL,
  month INTEGER NOT NULL,
  day INTEGER NOT NULL,
  iso_year INTEGER NOT NULL,
  iso_week INTEGER NOT NULL,
  weekday INTEGER NOT NULL,
  week_start INTEGER NOT NULL,
  month_start INTEGER NOT NULL
);
CREATE TABLE dim_tenant (
  tenant_id TEXT PRIMARY KEY,
  slug TEXT NOT NULL,
  name TEXT NOT NULL,
  isolation TEXT NOT NULL,
  status TEXT NOT NULL,
  plan TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
-- The tenant's plan and status over time (type 2): one row per state, valid from one day to the next state's.
CREATE TABLE dim_tenant_history (
  tenant_id TEXT NOT NULL,
  valid_from INTEGER NOT NULL,
  valid_to INTEGER,
  plan TEXT NOT NULL,
  status TEXT NOT NULL,
  PRIMARY KEY (tenant_id, valid_from)
);
CREATE TABLE dim_plan (
  plan_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  code TEXT NOT NULL,
  name TEXT NOT NULL,
  tier TEXT NOT NULL,
  currency TEXT NOT NULL,
  billing_interval TEXT NOT NULL,
  base_price BIGINT NOT NULL,
  included_seats BIGINT NOT NULL,
  seat_price BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (plan_id, version)
);
-- A tenant's product users (whom product events name), first and last seen.
CREATE TABLE dim_user (
  tenant_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, user_id)
);

-- Facts.
CREATE TABLE fact_mrr_daily (
  date_key INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  plan_id TEXT NOT NULL,
  plan_version INTEGER NOT NULL,
  plan_tier TEXT NOT NULL,
  currency TEXT NOT NULL,
  mrr BIGINT NOT NULL,
  PRIMARY KEY (date_key, tenant_id, subscription_id)
);
CREATE TABLE fact_revenue (
  date_key INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  document_id TEXT NOT NULL,
  line_no INTEGER NOT NULL,
  line_kind TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount BIGINT NOT NULL,
  PRIMARY KEY (date_key, tenant_id, kind, document_id, line_no)
);
CREATE TABLE fact_usage_daily (
  date_key INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  quantity BIGINT NOT NULL,
  events BIGINT NOT NULL,
  PRIMARY KEY (date_key, tenant_id, metric)
);
CREATE TABLE fact_product_events_daily (
  date_key INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  user_id TEXT NOT NULL,
  events BIGINT NOT NULL,
  value_sum BIGINT NOT NULL,
  PRIMARY KEY (date_key, tenant_id, event_type, user_id)
);
-- The seed's tenant_metrics: per tenant and day.
CREATE TABLE tenant_metrics (
  date_key INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  currency TEXT NOT NULL,
  mrr BIGINT NOT NULL,
  user_count BIGINT NOT NULL,
  active_users BIGINT NOT NULL,
  api_calls BIGINT NOT NULL,
  events BIGINT NOT NULL,
  revenue BIGINT NOT NULL,
  PRIMARY KEY (date_key, tenant_id)
);

-- Aggregates by ISO week and calendar month (views: always consistent with the daily facts).
CREATE VIEW tenant_metrics_weekly AS
  SELECT d.iso_year, d.iso_week, MIN(d.week_start) AS week_start, m.tenant_id, m.currency,
         CAST(SUM(CASE WHEN m.date_key = (SELECT MAX(m2.date_key) FROM tenant_metrics m2 JOIN dim_date d2
                                          ON d2.date_key = m2.date_key
                                          WHERE m2.tenant_id = m.tenant_id AND d2.iso_year = d.iso_year
                                            AND d2.iso_week = d.iso_week) THEN m.mrr ELSE 0 END) AS BIGINT) AS mrr_end,
         MAX(m.user_count) AS user_count, MAX(m.active_users) AS peak_daily_active_users,
         CAST(SUM(m.api_calls) AS BIGINT) AS api_calls, CAST(SUM(m.events) AS BIGINT) AS events,
         CAST(SUM(m.revenue) AS BIGINT) AS revenue
  FROM tenant_metrics m JOIN dim_date d ON d.date_key = m.date_key
  GROUP BY d.iso_year, d.iso_week, m.tenant_id, m.currency;
CREATE VIEW tenant_metrics_monthly AS
  SELECT d.month_start, m.tenant_id, m.currency,
         CAST(SUM(CASE WHEN m.date_key = (SELECT MAX(m2.date_key) FROM tenant_metrics m2 JOIN dim_date d2
                                          ON d2.date_key = m2.date_key
                                          WHERE m2.tenant_id = m.tenant_id AND d2.month_start = d.month_start)
                       THEN m.mrr ELSE 0 END) AS BIGINT) AS mrr_end,
         MAX(m.user_count) AS user_count, MAX(m.active_users) AS peak_daily_active_users,
         CAST(SUM(m.api_calls) AS BIGINT) AS api_calls, CAST(SUM(m.events) AS BIGINT) AS events,
         CAST(SUM(m.revenue) AS BIGINT) AS revenue
  FROM tenant_metrics m JOIN dim_date d ON d.date_key = m.date_key
  GROUP BY d.month_start, m.tenant_id, m.currency;
CREATE VIEW mrr_daily AS
  SELECT date_key, currency, CAST(SUM(mrr) AS BIGINT) AS mrr, COUNT(DISTINCT tenant_id) AS customers
  FROM fact_mrr_daily WHERE mrr > 0 GROUP BY date_key, currency;
