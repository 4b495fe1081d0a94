-- Sales and marketing spend (src/analytics/spend.cpp, docs/analytics.md, CAC): what super admins record per
-- calendar month (YYYY-MM), channel and currency, in minor units; CAC = a period's spend / its new customers. The
-- platform's own figures: no tenant, no row-level security.
CREATE TABLE marketing_spend (
  month TEXT NOT NULL,
  channel TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (month, channel, currency)
);
