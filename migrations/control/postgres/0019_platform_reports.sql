-- The platform's CSV reports (src/reports/, docs/analytics.md#reports): the analytics exports super admins request
-- (MRR movements, revenue, usage per tenant, cohorts), built by the report.build job like a tenant's audit-log
-- report. Every tenant's figures in one file: no tenant, no row-level security, super admins only.
CREATE TABLE platform_reports (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  parameters TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
  error TEXT NOT NULL,
  content TEXT NOT NULL,
  row_count BIGINT NOT NULL,
  requested_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  completed_at TEXT
);
CREATE INDEX platform_reports_created ON platform_reports (created_at);
