-- A tenant's own settings (src/tenancy/settings.hpp; GET/PATCH /v1/settings): branding, locale, time zone, a pinned
-- API version, CORS origins and webhook defaults, as a JSON object. '{}' means every default.
ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

-- Custom domains (src/domains/): a host name a tenant claims, proved by a DNS TXT record, then served as the
-- tenant's (Host resolution, per-domain TLS certificate by SNI). Control plane: a request's Host is resolved before
-- any tenant is known. A host name may be pending for several tenants (a claim proves nothing), verified for one.
CREATE TABLE custom_domains (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL,
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
