-- A tenant's own settings (src/tenancy/settings.hpp; GET/PATCH /v1/settings): branding, locale, time zone, a pinned
-- API version, CORS origins and webhook defaults, as a JSON object. '{}' means every default.
ALTER TABLE tenants ADD COLUMN settings JSONB NOT NULL DEFAULT '{}';

-- Custom domains (src/domains/): a host name a tenant claims, proved by a DNS TXT record, then served as the
-- tenant's (Host resolution, per-domain TLS certificate by SNI). Control plane: a request's Host is resolved before
-- any tenant is known. A host name may be pending for several tenants (a claim proves nothing), verified for one.
CREATE TABLE custom_domains (
  id UUID PRIMARY KEY,
  tenant_id UUID NOT NULL,
  hostname TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'verified')),
  verification_token TEXT NOT NULL,
  verified_at BIGINT,
  certificate_pem TEXT,
  private_key_sealed TEXT,
  certificate_not_after BIGINT,
  certificate_subject TEXT,
  certificate_fingerprint TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  UNIQUE (tenant_id, hostname)
);
CREATE UNIQUE INDEX custom_domains_verified_host ON custom_domains (hostname) WHERE status = 'verified';

-- The serving role sees and changes only the rows of the tenant its transaction is scoped to. Every verified host
-- name of every tenant (what Host resolution and SNI need) is read in the platform scope, on the owner's pool.
ALTER TABLE custom_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE custom_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY custom_domains_tenant_isolation ON custom_domains
  USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY custom_domains_platform_scope ON custom_domains AS PERMISSIVE FOR ALL TO CURRENT_ROLE
  USING (current_setting('app.platform_scope', true) = 'on')
  WITH CHECK (current_setting('app.platform_scope', true) = 'on');
