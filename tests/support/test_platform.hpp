#pragma once

#include <memory>
#include <optional>
#include <string>

#include "analytics/analytics.hpp"
#include "app/background.hpp"
#include "app/platform.hpp"
// Every module the platform owns (app/platform.hpp only declares them): tests reach any of them through it.
#include "audit/audit_log.hpp"
#include "audit/exporter.hpp"
#include "billing/billing.hpp"
#include "billing/entitlements.hpp"
#include "billing/payments/gateway.hpp"
#include "gateway/api_calls.hpp"
#include "gateway/rate_limits.hpp"
#include "identity/api_keys.hpp"
#include "identity/invitations.hpp"
#include "identity/key_store.hpp"
#include "identity/revocation.hpp"
#include "identity/token_service.hpp"
#include "identity/user_store.hpp"
#include "metering/metering.hpp"
#include "storage/database.hpp"
#include "support/isolation_cases.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_directory.hpp"

namespace atrium::test {

// A whole Platform on a fresh database of its own: SQLite in a temp directory, or PostgreSQL as in production —
// migrations and provisioning as an owner role, serving as a separate non-owner role without BYPASSRLS
// (atrium_owner / atrium_app, created on the test server when missing). Tenant databases it created are dropped
// with it. Password hashing uses the minimum cost and signing keys ES256 (unless the configuration names EdDSA) to
// keep tests fast.
class TestPlatform {
 public:
  // nullptr when PostgreSQL is asked for but not configured. With `clock` (which must outlive the platform) the
  // platform reads it instead of the system clock, and so do Redis rate limits (not Redis's TIME).
  static std::unique_ptr<TestPlatform> create(storage::Backend backend, const Config& base = Config{},
                                              const Clock* clock = nullptr);
  ~TestPlatform();

  app::Platform& platform() { return *platform_; }
  const Config& config() const { return config_; }
  // The owner-role URL (PostgreSQL), for tests that inspect the database directly.
  const std::string& admin_url() const { return admin_url_; }
  const std::string& app_url() const { return app_url_; }

 private:
  TestPlatform() = default;
  storage::Backend backend_ = storage::Backend::sqlite;
  Config config_;
  std::string server_url_;  // superuser URL of the test server
  std::string database_;
  std::string admin_url_;
  std::string app_url_;
  std::unique_ptr<app::Platform> platform_;
};

// Creates tenant `slug` (named the same) at `isolation` with its owner owner@<slug>.test, password
// "password-<slug>". A failure fails the calling test; the result is then an empty Tenant.
tenancy::Tenant create_test_tenant(app::Platform& platform, const std::string& slug, tenancy::Isolation isolation);

// Adds `email` to the tenant as `role` the way an operator does (the store, not the invitation route), creating the
// account with `password` when the address has none. Returns the user id; a failure fails the calling test.
std::string add_test_member(app::Platform& platform, const std::string& tenant_id, const std::string& email,
                            const std::string& password, identity::Role role);

// The invitation token mailed to `email`: takes queued email.send jobs (acknowledging them) until one to `email`
// holds a token. nullopt when none arrives within 2 s. The platform's workers must not be running.
std::optional<std::string> take_invitation_token(app::Platform& platform, const std::string& email);

// The quiescence barrier for "nothing more arrives": true once every committed event is relayed and the
// `queues` hold no job queued, scheduled or running (so no delivery, mail or retry of one is still to come), seen
// twice 50 ms apart; false if that does not happen within `timeout`. Works with the workers running or not.
bool settled(app::Platform& platform, const std::vector<std::string>& queues = {"webhooks", "email"},
             std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Store tests below the API: a platform on the parameter's backend and a ManualClock (2026-12-01T09:00:00Z), with
// tenants "alpha" (a_) and "bravo" (b_) at the parameter's isolation level. Skips or fails (as the test command
// asks) when PostgreSQL is asked for and not configured.
class TwoTenantTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override;
  app::Platform& platform() { return tp_->platform(); }

  ManualClock clock_{parse_rfc3339("2026-12-01T09:00:00Z").value()};
  std::unique_ptr<TestPlatform> tp_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
};

}  // namespace atrium::test
