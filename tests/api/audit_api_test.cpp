// The audit log end to end, on every backend and isolation level: every mutating route leaves exactly one entry
// when it succeeds and none when it fails; auth events; the read API's filters, pagination and tenant boundary;
// super admins' reads; tamper detection by verify; append-only enforcement on PostgreSQL.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <set>

#include "audit/audit_log.hpp"
#include "events/outbox.hpp"
#include "support/api_client.hpp"
#include "support/dns_server.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_certificates.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"
#include "tenancy/tenant.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;
using tenancy::Isolation;

using Case = IsolationCase;

// Runs SQL on its own connection: PostgreSQL as the role `url` names, or the SQLite file. "" when it worked,
// else the database's error message.
std::string exec_pg(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string error;
  if (PQstatus(conn) != CONNECTION_OK) {
    error = PQerrorMessage(conn);
  } else {
    PGresult* res = PQexec(conn, sql.c_str());
    const auto status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) error = PQresultErrorMessage(res);
    PQclear(res);
  }
  PQfinish(conn);
  return error;
}

std::string exec_sqlite(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string error;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
    error = sqlite3_errmsg(db);
  } else {
    sqlite3_busy_timeout(db, 5000);
    char* message = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      error = message ? message : "error";
      sqlite3_free(message);
    }
  }
  sqlite3_close(db);
  return error;
}

// One mutating operation: a call that succeeds (and the action it must record) and one that fails.
struct Mutation {
  std::string operation;  // "post /v1/projects", as in the OpenAPI document
  std::string action;
  std::function<ApiResponse()> succeed;
  std::function<ApiResponse()> fail;
  std::string chain = {};  // the chain the entry must land in ("platform" or a tenant id); empty: not checked
};

// What the cases act on, made by AuditApiTest::prepare; the last five are set by the cases that create them, for
// the cases after.
struct Subjects {
  std::string missing, p1, p2, m1, m2, key, refresh, extra_tenant, doomed_tenant, doomed_invitation, invitation_token;
  std::string hook, doomed_hook, doomed_domain, other_key, delivery, open_invoice;
  Json domain, one_off_lines;
  TestCertificate certificate;
  std::vector<std::string> dead;
  std::vector<std::pair<std::string, std::string>> in_a, in_b;
  std::string plan, coupon, subscription, draft, test_clock, dashboard;
  std::string erased_user;  // a member of alpha whose personal data is erased
};

// The response, after keeping the id it names (if any) in `id`.
ApiResponse remember(std::string& id, ApiResponse r) {
  if (r.body.is_object()) id = r.body.value("id", "");
  return r;
}

class AuditApiTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    // Custom domains are verified through DNS: a private server the test publishes the challenge on.
    dns_ = DnsServer::start("audit.test", {});
    ATRIUM_MISSING_SERVICE(dns_ == nullptr, "dnsmasq (/usr/sbin/dnsmasq, package dnsmasq-base)");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    config.tenancy.dns_server = dns_->address();
    config.webhooks.allow_private_targets = true;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = make_tenant("alpha");
    b_ = make_tenant("beta");
    owner_a_ = sign_in("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = sign_in("owner@beta.test", "password-beta", "beta");
    root_ = sign_in("root@atrium.test", "root-password", "");
  }

  app::Platform& platform() { return tp_->platform(); }

  tenancy::Tenant make_tenant(const std::string& slug) {
    return create_test_tenant(platform(), slug, GetParam().isolation);
  }

  Json grant(const std::string& email, const std::string& password, const std::string& tenant) {
    Json body = {{"grant_type", "password"}, {"email", email}, {"password", password}};
    if (!tenant.empty()) body["tenant"] = tenant;
    auto r = client_->call(Method::post, "/v1/auth/token", body, "", {{"User-Agent", "audit-test/1"}});
    EXPECT_EQ(r.status, 200) << r.body.dump();
    return r.body;
  }
  std::string sign_in(const std::string& email, const std::string& password, const std::string& tenant) {
    return grant(email, password, tenant).value("access_token", "");
  }

  // Every entry of every chain, newest first.
  std::vector<audit::Entry> all_entries() {
    std::vector<audit::Entry> out;
    audit::Query q;
    q.limit = 500;
    while (true) {
      auto page = platform().audit->list(q);
      EXPECT_TRUE(page) << page.error().message;
      if (!page) return out;
      out.insert(out.end(), page->entries.begin(), page->entries.end());
      if (!page->next_cursor) return out;
      q.cursor = page->next_cursor;
    }
  }

  std::string raw_sql(const std::string& sql) {
    // PostgreSQL: the owner sees audit entries only in the platform scope (RLS, migration 0010).
    if (GetParam().backend == Backend::postgres)
      return exec_pg(tp_->admin_url(), "SET app.platform_scope = 'on'; " + sql);
    return exec_sqlite((std::filesystem::path(tp_->config().storage.data_dir) / "atrium.db").string(), sql);
  }

  void prepare(Subjects& s);
  std::vector<Mutation> identity_and_tenant_mutations(Subjects& s);
  std::vector<Mutation> background_mutations(Subjects& s);
  std::vector<Mutation> billing_mutations(Subjects& s);

  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_;
  std::string owner_b_;
  std::string root_;
};

// Makes what the cases act on (the names the cases use, as members of `s`).
void AuditApiTest::prepare(Subjects& s) {
  auto project = [&] {
    return client_->call(Method::post, "/v1/projects", Json{{"name", "p"}}, owner_a_).body.value("id", "");
  };
  auto member = [&](const std::string& email) {
    return add_test_member(platform(), a_.id, email, "member-password", identity::Role::member);
  };
  const std::string missing = "01900000-0000-7000-8000-000000000000";
  std::string p1 = project(), p2 = project(), m1 = member("m1@alpha.test"), m2 = member("m2@alpha.test");
  std::string key =
      client_->call(Method::post, "/v1/api-keys", Json{{"name", "k"}, {"permissions", {"projects:read"}}}, owner_a_)
          .body.value("id", "");
  std::string refresh = grant("owner@alpha.test", "password-alpha", "alpha").value("refresh_token", "");
  std::string extra_tenant =
      client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", "gamma"}, {"name", "g"}}, root_)
          .body.value("id", "");
  std::string doomed_tenant =
      client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", "delta"}, {"name", "d"}}, root_)
          .body.value("id", "");
  // Two invitations: one to revoke, one to accept (its token is in the mail job).
  const std::string doomed_invitation =
      client_->call(Method::post, "/v1/users", Json{{"email", "doomed@alpha.test"}}, owner_a_).body.value("id", "");
  ASSERT_EQ(client_->call(Method::post, "/v1/users", Json{{"email", "invited@alpha.test"}}, owner_a_).status, 202);
  const std::string invitation_token = take_invitation_token(platform(), "invited@alpha.test").value_or("");
  ASSERT_FALSE(doomed_invitation.empty() || invitation_token.empty());
  ASSERT_FALSE(p1.empty() || p2.empty() || m1.empty() || m2.empty() || key.empty() || refresh.empty() ||
               extra_tenant.empty() || doomed_tenant.empty());
  auto endpoint = [&](const std::string& type) {
    return client_
        ->call(Method::post, "/v1/webhook-endpoints", Json{{"url", "http://127.0.0.1:9/hook"}, {"event_types", {type}}},
               owner_a_)
        .body.value("id", "");
  };
  const std::string hook = endpoint("project.created"), doomed_hook = endpoint("*");
  // A custom domain whose challenge is published, and one to remove.
  auto claim = [&](const std::string& host) {
    return client_->call(Method::post, "/v1/domains", Json{{"hostname", host}}, owner_a_).body;
  };
  const Json domain = claim("app.audit.test");
  const std::string doomed_domain = claim("old.audit.test").value("id", "");
  ASSERT_TRUE(domain.contains("verification") && !doomed_domain.empty()) << domain.dump();
  {
    const std::uint16_t port = dns_->port();
    dns_.reset();
    dns_ = DnsServer::start("audit.test", {{domain["verification"]["name"], domain["verification"]["value"]}}, port);
    ASSERT_NE(dns_, nullptr);
  }
  const auto certificate = make_test_certificate("app.audit.test");
  const auto other_key = make_test_certificate("app.audit.test").private_key_pem;
  ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "fires a webhook"}}, owner_a_).status, 201);
  events::Relay relay(
      platform().tenant_data->platform_database(), platform().clock(),
      [&](const events::Event& e) { return platform().workers()->publish(e); }, std::chrono::seconds(1));
  ASSERT_TRUE(relay.run_once());
  auto deliveries = client_->call(Method::get, "/v1/webhook-endpoints/" + hook + "/deliveries", std::nullopt, owner_a_);
  ASSERT_EQ(deliveries.status, 200) << deliveries.body.dump();
  ASSERT_FALSE(deliveries.body["data"].empty());
  const std::string delivery = deliveries.body["data"][0].value("id", "");
  // The delivery ended (redelivery of one still being attempted is refused).
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) {
    return webhooks::store::record_attempt(tx, platform().clock(), delivery, true, false, 200, "");
  }));
  auto& queue = platform().background->queue();
  std::vector<std::string> dead;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(queue.enqueue({.queue = "test", .type = "test.dead"}));
  auto consumer = queue.consumer("test");
  ASSERT_TRUE(consumer);
  for (int i = 0; i < 2; ++i) {
    auto d = (*consumer)->next(std::chrono::seconds(5));
    ASSERT_TRUE(d && *d);
    ASSERT_TRUE((*consumer)->bury(**d, "for the test"));
    dead.push_back((**d).job.id);
  }

  // Billing: a plan, tenant A's billing account (test mode, which only a super admin may set, for test clocks) and
  // tenant B's, whose card is declined, so its subscription is past due and the first invoice stays open.
  const std::vector<std::pair<std::string, std::string>> in_a{{"X-Tenant-ID", a_.id}}, in_b{{"X-Tenant-ID", b_.id}};
  auto basic = client_->call(Method::post, "/v1/plans",
                             Json{{"code", "audit-basic"},
                                  {"name", "Basic"},
                                  {"tier", "starter"},
                                  {"currency", "USD"},
                                  {"base_price", 10000},
                                  {"seat_price", 1000}},
                             root_);
  ASSERT_EQ(basic.status, 201) << basic.body.dump();
  auto account_a = client_->call(Method::put, "/v1/billing-account",
                                 Json{{"legal_name", "Alpha Ltd"},
                                      {"email", "billing@alpha.test"},
                                      {"currency", "USD"},
                                      {"payment_method", "pm_card_visa"},
                                      {"test_mode", true}},
                                 root_, in_a);
  ASSERT_EQ(account_a.status, 200) << account_a.body.dump();
  ASSERT_EQ(account_a.body.value("test_mode", false), true);
  auto account_b = client_->call(Method::put, "/v1/billing-account",
                                 Json{{"legal_name", "Beta Ltd"},
                                      {"email", "billing@beta.test"},
                                      {"currency", "USD"},
                                      {"payment_method", "pm_card_chargeDeclined"}},
                                 owner_b_);
  ASSERT_EQ(account_b.status, 200) << account_b.body.dump();
  auto declined = client_->call(Method::post, "/v1/subscriptions", Json{{"plan", "audit-basic"}}, owner_b_);
  ASSERT_EQ(declined.status, 201) << declined.body.dump();
  ASSERT_EQ(declined.body.value("status", ""), "past_due");
  auto open_invoices = client_->call(Method::get, "/v1/invoices?status=open", std::nullopt, owner_b_);
  ASSERT_EQ(open_invoices.status, 200) << open_invoices.body.dump();
  ASSERT_EQ(open_invoices.body["data"].size(), 1u);
  const std::string open_invoice = open_invoices.body["data"][0].value("id", "");
  const Json one_off_lines = Json::array({Json{{"description", "Onboarding"}, {"quantity", 1}, {"unit_amount", 5000}}});
  s.missing = missing;
  s.p1 = p1;
  s.p2 = p2;
  s.m1 = m1;
  s.m2 = m2;
  s.key = key;
  s.refresh = refresh;
  s.extra_tenant = extra_tenant;
  s.doomed_tenant = doomed_tenant;
  s.erased_user = add_test_member(platform(), a_.id, "gone@alpha.test", "gone-password", identity::Role::member);
  s.doomed_invitation = doomed_invitation;
  s.invitation_token = invitation_token;
  s.hook = hook;
  s.doomed_hook = doomed_hook;
  s.domain = domain;
  s.doomed_domain = doomed_domain;
  s.certificate = certificate;
  s.other_key = other_key;
  s.delivery = delivery;
  s.dead = dead;
  s.in_a = in_a;
  s.in_b = in_b;
  s.open_invoice = open_invoice;
  s.one_off_lines = one_off_lines;
}

// Sign-in, projects, members, API keys, tenants and analytics.
std::vector<Mutation> AuditApiTest::identity_and_tenant_mutations(Subjects& s) {
  return {
      {"post /v1/auth/token", "auth.login_succeeded",
       [&] {
         return client_->call(Method::post, "/v1/auth/token",
                              Json{{"grant_type", "password"},
                                   {"email", "owner@alpha.test"},
                                   {"password", "password-alpha"},
                                   {"tenant", "alpha"}});
       },
       [&] {
         return client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "magic"}});
       }},
      {"post /v1/auth/revoke", "auth.token_revoked",
       [&] {
         return client_->call(Method::post, "/v1/auth/revoke", Json{{"token", s.refresh}});
       },
       [&] {
         return client_->call(Method::post, "/v1/auth/revoke", Json{{"token", 42}});
       }},
      {"post /v1/projects", "project.created",
       [&] {
         return client_->call(Method::post, "/v1/projects", Json{{"name", "new"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/projects", Json{{"description", "no name"}}, owner_a_);
       }},
      {"patch /v1/projects/{id}", "project.updated",
       [&] {
         return client_->call(Method::patch, "/v1/projects/" + s.p1, Json{{"name", "renamed"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/projects/" + s.missing, Json{{"name", "x"}}, owner_a_);
       }},
      {"delete /v1/projects/{id}", "project.deleted",
       [&] { return client_->call(Method::delete_, "/v1/projects/" + s.p2, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/projects/" + s.missing, std::nullopt, owner_a_); }},
      {"post /v1/users", "invitation.created",
       [&] {
         return client_->call(Method::post, "/v1/users", Json{{"email", "m3@alpha.test"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/users", Json{{"email", "not an address"}}, owner_a_);
       },
       a_.id},
      {"delete /v1/invitations/{id}", "invitation.revoked",
       [&] { return client_->call(Method::delete_, "/v1/invitations/" + s.doomed_invitation, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/invitations/" + s.missing, std::nullopt, owner_a_); }, a_.id},
      {"post /v1/invitations/accept", "invitation.accepted",
       [&] {
         return client_->call(Method::post, "/v1/invitations/accept",
                              Json{{"token", s.invitation_token}, {"password", "invited-password"}});
       },
       [&] {
         return client_->call(Method::post, "/v1/invitations/accept",
                              Json{{"token", "inv_" + a_.id + "_" + std::string(43, 'x')}});
       },
       a_.id},
      {"patch /v1/users/{id}", "member.updated",
       [&] {
         return client_->call(Method::patch, "/v1/users/" + s.m1, Json{{"role", "viewer"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/users/" + s.missing, Json{{"role", "viewer"}}, owner_a_);
       }},
      {"delete /v1/users/{id}", "member.removed",
       [&] { return client_->call(Method::delete_, "/v1/users/" + s.m2, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/users/" + s.missing, std::nullopt, owner_a_); }},
      {"post /v1/api-keys", "api_key.created",
       [&] {
         return client_->call(Method::post, "/v1/api-keys", Json{{"name", "k2"}, {"permissions", {"projects:read"}}},
                              owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/api-keys", Json{{"name", "k3"}, {"permissions", {"no:such"}}},
                              owner_a_);
       }},
      {"delete /v1/api-keys/{id}", "api_key.revoked",
       [&] { return client_->call(Method::delete_, "/v1/api-keys/" + s.key, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/api-keys/" + s.missing, std::nullopt, owner_a_); }},
      {"post /v1/admin/tenants", "tenant.created",
       [&] {
         return client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", "epsilon"}, {"name", "e"}}, root_);
       },
       [&] {
         return client_->call(Method::post, "/v1/admin/tenants", Json{{"slug", "Not A Slug"}, {"name", "e"}}, root_);
       }},
      {"patch /v1/admin/tenants/{id}", "tenant.suspended",
       [&] {
         return client_->call(Method::patch, "/v1/admin/tenants/" + s.extra_tenant, Json{{"status", "suspended"}},
                              root_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/admin/tenants/" + s.missing, Json{{"status", "suspended"}}, root_);
       }},
      {"post /v1/analytics/embed-tokens", "analytics.embed_token_created",
       [&] {
         return client_->call(Method::post, "/v1/analytics/embed-tokens", Json{{"customer", "c1"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/analytics/embed-tokens", Json{{"ttl_seconds", 5}}, owner_a_);
       },
       a_.id},
      {"post /v1/analytics/dashboards", "dashboard.created",
       [&] {
         return remember(s.dashboard,
                         client_->call(Method::post, "/v1/analytics/dashboards", Json{{"name", "Audited"}}, owner_a_));
       },
       [&] {
         return client_->call(Method::post, "/v1/analytics/dashboards",
                              Json{{"name", "Bad"}, {"widgets", {{{"metric", "nope"}}}}}, owner_a_);
       },
       a_.id},
      {"put /v1/analytics/dashboards/{id}", "dashboard.updated",
       [&] {
         return client_->call(Method::put, "/v1/analytics/dashboards/" + s.dashboard, Json{{"name", "Renamed"}},
                              owner_a_);
       },
       [&] {
         return client_->call(Method::put, "/v1/analytics/dashboards/" + s.missing, Json{{"name", "Renamed"}},
                              owner_a_);
       },
       a_.id},
      {"delete /v1/analytics/dashboards/{id}", "dashboard.deleted",
       [&] {
         return client_->call(Method::delete_, "/v1/analytics/dashboards/" + s.dashboard, std::nullopt, owner_a_);
       },
       [&] {
         return client_->call(Method::delete_, "/v1/analytics/dashboards/" + s.dashboard, std::nullopt, owner_b_);
       },
       a_.id},
      {"put /v1/admin/analytics/spend", "analytics.spend_recorded",
       [&] {
         return client_->call(Method::put, "/v1/admin/analytics/spend",
                              Json{{"month", "2026-01"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 100}},
                              root_);
       },
       [&] {
         return client_->call(Method::put, "/v1/admin/analytics/spend",
                              Json{{"month", "2026-00"}, {"channel", "ads"}, {"currency", "USD"}, {"amount", 100}},
                              root_);
       }},
  };
}

// Webhooks, reports, settings, domains, jobs, the billing run and deleting a tenant.
std::vector<Mutation> AuditApiTest::background_mutations(Subjects& s) {
  return {
      {"post /v1/webhook-endpoints", "webhook_endpoint.created",
       [&] {
         return client_->call(Method::post, "/v1/webhook-endpoints",
                              Json{{"url", "https://hooks.example.com/x"}, {"event_types", {"*"}}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/webhook-endpoints",
                              Json{{"url", "ftp://hooks.example.com/x"}, {"event_types", {"*"}}}, owner_a_);
       }},
      {"delete /v1/webhook-endpoints/{id}", "webhook_endpoint.deleted",
       [&] { return client_->call(Method::delete_, "/v1/webhook-endpoints/" + s.doomed_hook, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/webhook-endpoints/" + s.missing, std::nullopt, owner_a_); }},
      {"post /v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver", "webhook_delivery.redelivered",
       [&] {
         return client_->call(Method::post,
                              "/v1/webhook-endpoints/" + s.hook + "/deliveries/" + s.delivery + "/redeliver",
                              std::nullopt, owner_a_);
       },
       [&] {
         return client_->call(Method::post,
                              "/v1/webhook-endpoints/" + s.hook + "/deliveries/" + s.missing + "/redeliver",
                              std::nullopt, owner_a_);
       }},
      {"post /v1/webhook-endpoints/{id}/enable", "webhook_endpoint.enabled",
       [&] {
         return client_->call(Method::post, "/v1/webhook-endpoints/" + s.hook + "/enable", std::nullopt, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/webhook-endpoints/" + s.missing + "/enable", std::nullopt, owner_a_);
       }},
      {"post /v1/reports", "report.requested",
       [&] {
         return client_->call(
             Method::post, "/v1/reports",
             Json{{"type", "audit_log"}, {"from", "2026-01-01T00:00:00Z"}, {"to", "2027-01-01T00:00:00Z"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/reports",
                              Json{{"type", "sales"}, {"from", "2026-01-01T00:00:00Z"}, {"to", "2027-01-01T00:00:00Z"}},
                              owner_a_);
       }},
      {"post /v1/admin/reports", "report.requested",
       [&] {
         return client_->call(Method::post, "/v1/admin/reports",
                              Json{{"type", "revenue"}, {"from", "2026-01-01"}, {"to", "2026-02-01"}}, root_);
       },
       [&] {
         return client_->call(Method::post, "/v1/admin/reports",
                              Json{{"type", "revenue"}, {"from", "2026-02-01"}, {"to", "2026-01-01"}}, root_);
       },
       "platform"},
      {"put /v1/email-settings", "email_settings.updated",
       [&] {
         return client_->call(Method::put, "/v1/email-settings",
                              Json{{"from_name", "Alpha Support"}, {"reply_to", "help@alpha.test"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::put, "/v1/email-settings", Json{{"reply_to", "not an address"}}, owner_a_);
       }},
      {"patch /v1/settings", "tenant.updated",
       [&] {
         return client_->call(Method::patch, "/v1/settings", Json{{"timezone", "Europe/Paris"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/settings", Json{{"timezone", "Nowhere/City"}}, owner_a_);
       },
       a_.id},
      {"post /v1/domains", "custom_domain.created",
       [&] {
         return client_->call(Method::post, "/v1/domains", Json{{"hostname", "new.audit.test"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/domains", Json{{"hostname", "localhost"}}, owner_a_);
       },
       a_.id},
      {"post /v1/domains/{id}/verify", "custom_domain.verified",
       [&] {
         return client_->call(Method::post, "/v1/domains/" + s.domain.value("id", "") + "/verify", std::nullopt,
                              owner_a_);
       },
       [&] { return client_->call(Method::post, "/v1/domains/" + s.missing + "/verify", std::nullopt, owner_a_); },
       a_.id},
      {"put /v1/domains/{id}/certificate", "custom_domain.certificate_set",
       [&] {
         return client_->call(
             Method::put, "/v1/domains/" + s.domain.value("id", "") + "/certificate",
             Json{{"certificate", s.certificate.certificate_pem}, {"private_key", s.certificate.private_key_pem}},
             owner_a_);
       },
       [&] {
         return client_->call(Method::put, "/v1/domains/" + s.domain.value("id", "") + "/certificate",
                              Json{{"certificate", s.certificate.certificate_pem}, {"private_key", s.other_key}},
                              owner_a_);
       },
       a_.id},
      {"delete /v1/domains/{id}", "custom_domain.deleted",
       [&] { return client_->call(Method::delete_, "/v1/domains/" + s.doomed_domain, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/domains/" + s.missing, std::nullopt, owner_a_); }, a_.id},
      {"post /v1/admin/jobs/{id}/retry", "job.retried",
       [&] { return client_->call(Method::post, "/v1/admin/jobs/" + s.dead[0] + "/retry", std::nullopt, root_); },
       [&] { return client_->call(Method::post, "/v1/admin/jobs/" + s.missing + "/retry", std::nullopt, root_); }},
      {"delete /v1/admin/jobs/{id}", "job.discarded",
       [&] { return client_->call(Method::delete_, "/v1/admin/jobs/" + s.dead[1], std::nullopt, root_); },
       [&] { return client_->call(Method::delete_, "/v1/admin/jobs/" + s.missing, std::nullopt, root_); }},
      {"post /v1/admin/billing/run", "billing.run_requested",
       [&] { return client_->call(Method::post, "/v1/admin/billing/run", std::nullopt, root_); },
       [&] {
         return client_->call(Method::post, "/v1/admin/billing/run", std::nullopt, root_,
                              {{"Idempotency-Key", "not a key"}});
       }},
      {"post /v1/admin/users/{id}/erase", "user.erased",
       [&] { return client_->call(Method::post, "/v1/admin/users/" + s.erased_user + "/erase", std::nullopt, root_); },
       [&] { return client_->call(Method::post, "/v1/admin/users/" + s.missing + "/erase", std::nullopt, root_); }},
      {"delete /v1/admin/tenants/{id}", "tenant.deleted",
       [&] { return client_->call(Method::delete_, "/v1/admin/tenants/" + s.doomed_tenant, std::nullopt, root_); },
       [&] { return client_->call(Method::delete_, "/v1/admin/tenants/" + s.missing, std::nullopt, root_); }},

      // Billing. The catalog is the platform's (its chain); the rest lands in the tenant's chain.
  };
}

// The catalog, accounts, subscriptions, invoices, credit notes, test clocks and entitlements.
std::vector<Mutation> AuditApiTest::billing_mutations(Subjects& s) {
  return {
      {"post /v1/plans", "plan.created",
       [&] {
         return remember(s.plan, client_->call(Method::post, "/v1/plans",
                                               Json{{"code", "audit-pro"},
                                                    {"name", "Pro"},
                                                    {"tier", "professional"},
                                                    {"currency", "USD"},
                                                    {"base_price", 20000},
                                                    {"included_seats", 3},
                                                    {"seat_price", 1500}},
                                               root_));
       },
       [&] {
         return client_->call(
             Method::post, "/v1/plans",
             Json{{"code", "audit-gold"}, {"name", "Gold"}, {"tier", "gold"}, {"currency", "USD"}, {"base_price", 1}},
             root_);
       },
       "platform"},
      {"patch /v1/plans/{id}", "plan.updated",
       [&] {
         return client_->call(Method::patch, "/v1/plans/" + s.plan, Json{{"name", "Pro 2026"}, {"base_price", 25000}},
                              root_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/plans/" + s.plan, Json{{"code", "renamed"}}, root_);
       },
       "platform"},
      {"post /v1/coupons", "coupon.created",
       [&] {
         return remember(s.coupon, client_->call(Method::post, "/v1/coupons",
                                                 Json{{"code", "AUDIT20"}, {"percent_off_bps", 2000}}, root_));
       },
       [&] {
         return client_->call(
             Method::post, "/v1/coupons",
             Json{{"code", "AUDIT-BOTH"}, {"percent_off_bps", 2000}, {"amount_off", 500}, {"currency", "USD"}}, root_);
       },
       "platform"},
      {"delete /v1/coupons/{id}", "coupon.deactivated",
       [&] { return client_->call(Method::delete_, "/v1/coupons/" + s.coupon, std::nullopt, root_); },
       [&] { return client_->call(Method::delete_, "/v1/coupons/" + s.missing, std::nullopt, root_); }, "platform"},
      {"put /v1/tax-rates", "tax_rate.updated",
       [&] {
         return client_->call(Method::put, "/v1/tax-rates", Json{{"country", "DE"}, {"name", "VAT"}, {"bps", 1900}},
                              root_);
       },
       [&] {
         return client_->call(Method::put, "/v1/tax-rates", Json{{"country", "de"}, {"bps", 1900}}, root_);
       },
       "platform"},
      {"post /v1/meters", "meter.created",
       [&] {
         return client_->call(Method::post, "/v1/meters", Json{{"metric", "audit.calls"}, {"aggregation", "sum"}},
                              root_);
       },
       [&] {
         return client_->call(Method::post, "/v1/meters", Json{{"metric", "audit.calls"}, {"aggregation", "median"}},
                              root_);
       },
       "platform"},
      {"put /v1/billing-account", "billing_account.updated",
       [&] {
         return client_->call(Method::put, "/v1/billing-account", Json{{"legal_name", "Alpha Limited"}}, owner_a_);
       },
       [&] {
         // test_mode is the super admin's to change.
         return client_->call(Method::put, "/v1/billing-account", Json{{"test_mode", false}}, owner_a_);
       },
       a_.id},
      {"post /v1/subscriptions", "subscription.created",
       [&] {
         return remember(s.subscription, client_->call(Method::post, "/v1/subscriptions",
                                                       Json{{"plan", "audit-basic"}, {"seats", 2}}, owner_a_));
       },
       [&] {
         return client_->call(Method::post, "/v1/subscriptions", Json{{"plan", "no-such-plan"}}, owner_a_);
       },
       a_.id},
      {"patch /v1/subscriptions/{id}", "subscription.updated",
       [&] {
         return client_->call(Method::patch, "/v1/subscriptions/" + s.subscription, Json{{"plan", "audit-pro"}},
                              owner_a_);
       },
       [&] {
         return client_->call(Method::patch, "/v1/subscriptions/" + s.missing, Json{{"seats", 2}}, owner_a_);
       },
       a_.id},
      {"post /v1/subscriptions/{id}/pause", "subscription.paused",
       [&] {
         return client_->call(Method::post, "/v1/subscriptions/" + s.subscription + "/pause", std::nullopt, owner_a_);
       },
       [&] { return client_->call(Method::post, "/v1/subscriptions/" + s.missing + "/pause", std::nullopt, owner_a_); },
       a_.id},
      {"post /v1/subscriptions/{id}/resume", "subscription.resumed",
       [&] {
         return client_->call(Method::post, "/v1/subscriptions/" + s.subscription + "/resume", std::nullopt, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/subscriptions/" + s.missing + "/resume", std::nullopt, owner_a_);
       },
       a_.id},
      {"post /v1/subscriptions/{id}/cancel", "subscription.cancelled",
       [&] {
         return client_->call(Method::post, "/v1/subscriptions/" + s.subscription + "/cancel",
                              Json{{"at_period_end", false}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/subscriptions/" + s.subscription + "/cancel",
                              Json{{"at_period_end", "yes"}}, owner_a_);
       },
       a_.id},
      {"post /v1/invoices", "invoice.created",
       [&] {
         return remember(s.draft, client_->call(Method::post, "/v1/invoices",
                                                Json{{"lines", s.one_off_lines}, {"memo", "one-off"}}, root_, s.in_b));
       },
       [&] {
         // One-off invoices are the super admin's.
         return client_->call(Method::post, "/v1/invoices", Json{{"lines", s.one_off_lines}}, owner_b_);
       },
       b_.id},
      {"post /v1/invoices/{id}/finalize", "invoice.finalized",
       [&] {
         return client_->call(Method::post, "/v1/invoices/" + s.draft + "/finalize", std::nullopt, root_, s.in_b);
       },
       [&] {
         return client_->call(Method::post, "/v1/invoices/" + s.open_invoice + "/finalize", std::nullopt, root_,
                              s.in_b);
       },
       b_.id},
      {"post /v1/invoices/{id}/pay", "invoice.payment_requested",
       [&] { return client_->call(Method::post, "/v1/invoices/" + s.open_invoice + "/pay", std::nullopt, owner_b_); },
       [&] { return client_->call(Method::post, "/v1/invoices/" + s.missing + "/pay", std::nullopt, owner_b_); },
       b_.id},
      {"post /v1/invoices/{id}/void", "invoice.voided",
       [&] { return client_->call(Method::post, "/v1/invoices/" + s.draft + "/void", std::nullopt, root_, s.in_b); },
       [&] { return client_->call(Method::post, "/v1/invoices/" + s.draft + "/void", std::nullopt, owner_b_); }, b_.id},
      {"post /v1/credit-notes", "credit_note.created",
       [&] {
         return client_->call(Method::post, "/v1/credit-notes",
                              Json{{"invoice_id", s.open_invoice}, {"amount", 1000}, {"method", "invoice"}}, root_,
                              s.in_b);
       },
       [&] {
         return client_->call(Method::post, "/v1/credit-notes",
                              Json{{"invoice_id", s.open_invoice}, {"amount", 1000000}, {"method", "invoice"}}, root_,
                              s.in_b);
       },
       b_.id},
      {"post /v1/invoices/{id}/mark-uncollectible", "invoice.marked_uncollectible",
       [&] {
         return client_->call(Method::post, "/v1/invoices/" + s.open_invoice + "/mark-uncollectible", std::nullopt,
                              root_, s.in_b);
       },
       [&] {
         return client_->call(Method::post, "/v1/invoices/" + s.open_invoice + "/mark-uncollectible", std::nullopt,
                              owner_b_);
       },
       b_.id},
      {"post /v1/test-clocks", "test_clock.created",
       [&] {
         return remember(s.test_clock,
                         client_->call(Method::post, "/v1/test-clocks",
                                       Json{{"name", "audit"}, {"frozen_time", "2026-01-01T00:00:00Z"}}, owner_a_));
       },
       [&] {
         // B's billing account is not in test mode.
         return client_->call(Method::post, "/v1/test-clocks", Json{{"name", "audit"}}, owner_b_);
       },
       a_.id},
      {"post /v1/test-clocks/{id}/advance", "test_clock.advanced",
       [&] {
         return client_->call(Method::post, "/v1/test-clocks/" + s.test_clock + "/advance",
                              Json{{"frozen_time", "2026-02-01T00:00:00Z"}}, owner_a_);
       },
       [&] {
         return client_->call(Method::post, "/v1/test-clocks/" + s.test_clock + "/advance",
                              Json{{"frozen_time", "2025-12-01T00:00:00Z"}}, owner_a_);
       },
       a_.id},
      {"put /v1/entitlements/{name}", "entitlement.override_set",
       [&] {
         return client_->call(Method::put, "/v1/entitlements/projects", Json{{"limit", 5}}, root_, s.in_b);
       },
       [&] {
         return client_->call(Method::put, "/v1/entitlements/projects", Json{{"limit", -5}}, root_, s.in_b);
       },
       b_.id},
      {"delete /v1/entitlements/{name}", "entitlement.override_deleted",
       [&] { return client_->call(Method::delete_, "/v1/entitlements/projects", std::nullopt, root_, s.in_b); },
       [&] { return client_->call(Method::delete_, "/v1/entitlements/widgets", std::nullopt, root_, s.in_b); }, b_.id},
      {"delete /v1/test-clocks/{id}", "test_clock.deleted",
       [&] { return client_->call(Method::delete_, "/v1/test-clocks/" + s.test_clock, std::nullopt, owner_a_); },
       [&] { return client_->call(Method::delete_, "/v1/test-clocks/" + s.missing, std::nullopt, owner_a_); }, a_.id},
  };
}

TEST_P(AuditApiTest, EveryMutatingRouteLeavesOneEntryWhenItSucceedsAndNoneWhenItFails) {
  Subjects s;
  ASSERT_NO_FATAL_FAILURE(prepare(s));
  std::vector<Mutation> mutations;
  for (const auto& group : {identity_and_tenant_mutations(s), background_mutations(s), billing_mutations(s)}) {
    mutations.insert(mutations.end(), group.begin(), group.end());
  }

  // Every mutating route has a case here, so a new route without auditing cannot slip through. Exempt, with the
  // reason, and checked here to leave no entry:
  //   post /v1/usage: usage events arrive by the million; each accepted event is its own durable record
  //   (usage_events, with its idempotency key and received_at) and atrium_usage_events_total counts every outcome,
  //   so an audit entry per ingestion would double the writes without telling anyone anything new.
  //   post /v1/events: product events are usage events (the same ingestion and the same reasons).
  const std::set<std::string> exempt = {"post /v1/usage", "post /v1/events"};
  // Audited, and checked where the platform has what they need to succeed (a churn history, a trained model):
  // tests/churn/churn_test.cpp asserts one entry per success (platform chain) and none per refused call.
  const std::set<std::string> covered_by_churn_test = {
      "post /v1/admin/churn/models", "post /v1/admin/churn/models/{version}/activate", "post /v1/admin/churn/score",
      "post /v1/admin/tenants/{id}/churn/interventions",
      "post /v1/admin/tenants/{id}/churn/interventions/{intervention}/outcome"};
  std::set<std::string> covered = exempt;
  covered.insert(covered_by_churn_test.begin(), covered_by_churn_test.end());
  for (const auto& m : mutations) covered.insert(m.operation);
  {
    const auto before = all_entries();
    const std::string now = format_rfc3339(std::chrono::system_clock::now());
    auto usage = client_->call(
        Method::post, "/v1/usage",
        Json{{"metric", "api.calls"}, {"quantity", 1}, {"timestamp", now}, {"idempotency_key", "audit-exempt"}},
        owner_a_);
    EXPECT_EQ(usage.status, 202) << usage.body.dump();
    EXPECT_EQ(usage.body.value("accepted", 0), 1);
    auto events = client_->call(
        Method::post, "/v1/events",
        Json{{"type", "feature.used"}, {"properties", {{"feature", "audit"}}}, {"idempotency_key", "audit-exempt"}},
        owner_a_);
    EXPECT_EQ(events.status, 202) << events.body.dump();
    EXPECT_EQ(events.body.value("accepted", 0), 1);
    EXPECT_EQ(all_entries().size(), before.size()) << "ingestion is exempt from the audit log";
  }
  for (const auto& route : client_->router().routes()) {
    if (route->method == Method::get || route->method == Method::head) continue;
    std::string method(http::method_name(route->method));
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_TRUE(covered.contains(method + " " + route->pattern))
        << "no audit case for " << method << " " << route->pattern;
  }

  for (const auto& m : mutations) {
    SCOPED_TRACE(m.operation);
    const auto before = all_entries();
    auto failed = m.fail();
    EXPECT_GE(failed.status, 400) << failed.body.dump();
    EXPECT_EQ(all_entries().size(), before.size()) << "a failed call left an entry";

    auto ok = m.succeed();
    EXPECT_LT(ok.status, 300) << ok.body.dump();
    const auto after = all_entries();
    ASSERT_EQ(after.size(), before.size() + 1) << "a successful call must leave exactly one entry";
    EXPECT_EQ(after.front().action, m.action);
    if (!m.chain.empty()) {
      EXPECT_EQ(after.front().chain_id, m.chain);
    }
  }
  auto report = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_TRUE(report->findings.empty()) << report->findings.front().problem;
}

TEST_P(AuditApiTest, EntriesNameWhoDidWhatFromWhereWithTheChangedFields) {
  auto created =
      client_->call(Method::post, "/v1/projects", Json{{"name", "before"}}, owner_a_, {{"User-Agent", "ua/2"}});
  ASSERT_EQ(created.status, 201);
  const std::string id = created.body.value("id", "");
  auto patched = client_->call(Method::patch, "/v1/projects/" + id, Json{{"name", "after"}}, owner_a_);
  ASSERT_EQ(patched.status, 200);

  auto r = client_->call(Method::get, "/v1/audit-logs?resource_id=" + id, std::nullopt, owner_a_);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  ASSERT_EQ(r.body["data"].size(), 2u);
  const Json& update = r.body["data"][0];  // newest first
  const Json& create = r.body["data"][1];
  EXPECT_EQ(update["action"], "project.updated");
  EXPECT_EQ(update["changes"], (Json{{"name", {{"before", "before"}, {"after", "after"}}}}));
  EXPECT_EQ(create["action"], "project.created");
  EXPECT_EQ(create["user_agent"], "ua/2");
  EXPECT_EQ(create["actor"]["type"], "user");
  EXPECT_EQ(create["actor"]["ip"], "127.0.0.1");
  EXPECT_EQ(create["tenant_id"], a_.id);
  EXPECT_EQ(create["resource"], (Json{{"type", "project"}, {"id", id}}));
  EXPECT_FALSE(create["request_id"].get<std::string>().empty());
  EXPECT_FALSE(create["session_id"].get<std::string>().empty());
  EXPECT_EQ(update["chain"]["prev_hash"], create["chain"]["hash"]);
  EXPECT_EQ(update["chain"]["seq"].get<int>(), create["chain"]["seq"].get<int>() + 1);
}

TEST_P(AuditApiTest, RawHeaderBytesAreStoredSafelyAndNeverFailTheChange) {
  // Header values may carry any byte; the entry keeps a printable, valid UTF-8 version.
  auto r = client_->call(Method::post, "/v1/projects", Json{{"name", "p"}}, owner_a_,
                         {{"User-Agent", std::string("bot\xC3\x28\x01/1")}});
  ASSERT_EQ(r.status, 201) << r.body.dump();
  auto entries = all_entries();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.front().action, "project.created");
  EXPECT_EQ(entries.front().user_agent, "bot?(?/1");
  auto listed = client_->call(Method::get, "/v1/audit-logs?limit=1", std::nullopt, owner_a_);
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(listed.body["data"][0]["user_agent"], "bot?(?/1");
}

TEST_P(AuditApiTest, AFailedSignInOfANonMemberIsNotShownToTheTenant) {
  auto refused = client_->call(Method::post, "/v1/auth/token",
                               Json{{"grant_type", "password"},
                                    {"email", "owner@beta.test"},
                                    {"password", "password-beta"},
                                    {"tenant", "alpha"}});
  EXPECT_EQ(refused.status, 400);
  auto unknown = client_->call(
      Method::post, "/v1/auth/token",
      Json{{"grant_type", "password"}, {"email", "nobody@else.test"}, {"password", "whatever-1"}, {"tenant", "alpha"}});
  EXPECT_EQ(unknown.status, 400);
  auto alpha = client_->call(Method::get, "/v1/audit-logs?action=auth.login_failed", std::nullopt, owner_a_);
  ASSERT_EQ(alpha.status, 200);
  EXPECT_TRUE(alpha.body["data"].empty()) << alpha.body.dump();
  int in_platform = 0;
  for (const auto& e : all_entries()) in_platform += e.action == "auth.login_failed" && e.chain_id == "platform";
  EXPECT_EQ(in_platform, 2);
}

TEST_P(AuditApiTest, APurgeCanBeRepeated) {
  for (int i = 0; i < 2; ++i) {
    auto r = client_->call(Method::delete_, "/v1/admin/tenants/" + b_.id + "?purge=true", std::nullopt, root_);
    ASSERT_EQ(r.status, 204) << "purge " << i + 1 << ": " << r.body.dump();
  }
  int purged = 0;
  for (const auto& e : all_entries()) purged += e.action == "tenant.purged" && e.tenant_id == b_.id;
  EXPECT_EQ(purged, 2);
  auto report = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

TEST_P(AuditApiTest, AuthEventsAreRecorded) {
  // A failed sign-in is recorded (in the tenant's chain, naming the account) though the request fails.
  auto bad = client_->call(
      Method::post, "/v1/auth/token",
      Json{{"grant_type", "password"}, {"email", "owner@alpha.test"}, {"password", "wrong-one"}, {"tenant", "alpha"}});
  EXPECT_EQ(bad.status, 400);
  auto tokens = grant("owner@alpha.test", "password-alpha", "alpha");
  const std::string refresh = tokens.value("refresh_token", "");
  auto refreshed =
      client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "refresh_token"}, {"refresh_token", refresh}});
  ASSERT_EQ(refreshed.status, 200);
  auto reused =
      client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "refresh_token"}, {"refresh_token", refresh}});
  EXPECT_EQ(reused.status, 400);
  auto created_key = client_->call(Method::post, "/v1/api-keys",
                                   Json{{"name", "ci"}, {"permissions", {"projects:read", "audit:read"}}}, owner_a_);
  ASSERT_EQ(created_key.status, 201);
  const std::string secret = created_key.body.value("secret", "");
  ASSERT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, secret).status, 200);
  ASSERT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, secret).status, 200);  // not first any more

  std::map<std::string, int> actions;
  std::string failed_actor;
  std::string key_actor_type;
  auto r = client_->call(Method::get, "/v1/audit-logs?limit=100", std::nullopt, secret);
  ASSERT_EQ(r.status, 200) << r.body.dump();
  for (const auto& e : r.body["data"]) {
    ++actions[e["action"].get<std::string>()];
    if (e["action"] == "auth.login_failed") failed_actor = e["actor"]["id"];
    if (e["action"] == "api_key.first_used") key_actor_type = e["actor"]["type"];
  }
  EXPECT_EQ(actions["auth.login_failed"], 1);
  EXPECT_EQ(actions["auth.token_refreshed"], 1);
  EXPECT_EQ(actions["auth.refresh_reuse_detected"], 1);
  EXPECT_EQ(actions["api_key.created"], 1);
  EXPECT_EQ(actions["api_key.first_used"], 1);
  EXPECT_EQ(key_actor_type, "api_key");
  auto owner = platform().users->find_by_email("owner@alpha.test");
  ASSERT_TRUE(owner);
  EXPECT_EQ(failed_actor, owner->id);
}

TEST_P(AuditApiTest, TenantsSeeOnlyTheirOwnChainAndFiltersWork) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "a" + std::to_string(i)}}, owner_a_).status,
              201);
  }
  ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "b"}}, owner_b_).status, 201);

  // B never sees A's entries, whatever it asks for.
  auto b_view = client_->call(Method::get, "/v1/audit-logs?limit=100", std::nullopt, owner_b_);
  ASSERT_EQ(b_view.status, 200);
  for (const auto& e : b_view.body["data"]) EXPECT_EQ(e["tenant_id"], b_.id) << e.dump();
  auto b_forged =
      client_->call(Method::get, "/v1/audit-logs?limit=100", std::nullopt, owner_b_, {{"X-Tenant-ID", a_.id}});
  EXPECT_EQ(b_forged.status, 403);

  // Filters and pagination: 5 project.created entries in pages of 2, newest first, no repeats.
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    std::string target = "/v1/audit-logs?action=project.created&limit=2";
    if (!cursor.empty()) target += "&cursor=" + cursor;
    auto r = client_->call(Method::get, target, std::nullopt, owner_a_);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    for (const auto& e : r.body["data"]) {
      EXPECT_EQ(e["action"], "project.created");
      seen.push_back(e["id"]);
    }
    if (r.body["next_cursor"].is_null()) break;
    cursor = r.body["next_cursor"];
  }
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend()));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 5u);

  auto owner = platform().users->find_by_email("owner@alpha.test");
  auto by_actor = client_->call(Method::get, "/v1/audit-logs?limit=100&actor_id=" + owner->id, std::nullopt, owner_a_);
  ASSERT_EQ(by_actor.status, 200);
  EXPECT_GE(by_actor.body["data"].size(), 5u);
  for (const auto& e : by_actor.body["data"]) EXPECT_EQ(e["actor"]["id"], owner->id);

  auto future = client_->call(Method::get, "/v1/audit-logs?from=2200-01-01T00:00:00Z", std::nullopt, owner_a_);
  ASSERT_EQ(future.status, 200);
  EXPECT_TRUE(future.body["data"].empty());
  auto past = client_->call(Method::get, "/v1/audit-logs?to=2000-01-01T00:00:00%2B02:00", std::nullopt, owner_a_);
  ASSERT_EQ(past.status, 200);
  EXPECT_TRUE(past.body["data"].empty());
  EXPECT_EQ(client_->call(Method::get, "/v1/audit-logs?from=yesterday", std::nullopt, owner_a_).status, 400);
  EXPECT_EQ(client_->call(Method::get, "/v1/audit-logs?cursor=nope", std::nullopt, owner_a_).status, 400);

  // audit:read is for owners and admins.
  ASSERT_FALSE(
      add_test_member(platform(), a_.id, "viewer@alpha.test", "viewer-password", identity::Role::member).empty());
  const std::string member = sign_in("viewer@alpha.test", "viewer-password", "alpha");
  EXPECT_EQ(client_->call(Method::get, "/v1/audit-logs", std::nullopt, member).status, 403);
}

TEST_P(AuditApiTest, SuperAdminReadsAreThemselvesAudited) {
  const auto before = all_entries().size();
  auto all = client_->call(Method::get, "/v1/admin/audit-logs?limit=100", std::nullopt, root_);
  ASSERT_EQ(all.status, 200) << all.body.dump();
  std::set<std::string> tenants;
  for (const auto& e : all.body["data"]) tenants.insert(e["tenant_id"].is_null() ? "platform" : e["tenant_id"]);
  EXPECT_TRUE(tenants.contains(a_.id) && tenants.contains(b_.id) && tenants.contains("platform"));

  auto only_b = client_->call(Method::get, "/v1/admin/audit-logs?tenant_id=" + b_.id, std::nullopt, root_);
  ASSERT_EQ(only_b.status, 200);
  for (const auto& e : only_b.body["data"]) EXPECT_EQ(e["tenant_id"], b_.id);
  EXPECT_EQ(client_->call(Method::get, "/v1/admin/audit-logs?tenant_id=x", std::nullopt, root_).status, 400);
  EXPECT_EQ(client_->call(Method::get, "/v1/admin/audit-logs", std::nullopt, owner_a_).status, 403);

  // Reading a tenant's projects as a super admin lands in that tenant's chain.
  ASSERT_EQ(client_->call(Method::get, "/v1/projects", std::nullopt, root_, {{"X-Tenant-ID", a_.id}}).status, 200);
  auto entries = all_entries();
  EXPECT_EQ(entries.size(), before + 3);  // two admin reads (the 400 and 403 left none) and one tenant read
  EXPECT_EQ(entries.front().action, "admin.tenant_read");
  EXPECT_EQ(entries.front().tenant_id, a_.id);
  EXPECT_EQ(entries.front().actor_type, "super_admin");
  EXPECT_EQ(entries[1].action, "admin.read");
  EXPECT_EQ(entries[1].chain_id, "platform");
}

TEST_P(AuditApiTest, VerifyNamesAlteredRemovedAndReorderedEntries) {
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "p" + std::to_string(i)}}, owner_a_).status,
              201);
  }
  auto clean = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(clean);
  ASSERT_TRUE(clean->findings.empty());
  ASSERT_GE(clean->entries, 6);
  auto checkpoint = platform().audit->heads();
  ASSERT_TRUE(checkpoint);

  auto chain = platform().audit->read_chain(a_.id, 0, 100);
  ASSERT_TRUE(chain);
  ASSERT_GE(chain->size(), 5u);
  const audit::Entry victim = (*chain)[2];
  const bool pg = GetParam().backend == Backend::postgres;
  const std::string unlock = pg ? "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only; "
                                : "DROP TRIGGER IF EXISTS audit_logs_no_update; DROP TRIGGER IF EXISTS "
                                  "audit_logs_no_delete; ";
  const std::string relock = pg ? "; ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only" : "";

  auto expect_finding = [&](const std::string& entry_id, std::int64_t seq) {
    auto report = platform().audit->verify(a_.id);
    ASSERT_TRUE(report) << report.error().message;
    ASSERT_EQ(report->findings.size(), 1u);
    EXPECT_EQ(report->findings[0].chain_id, a_.id);
    EXPECT_EQ(report->findings[0].seq, seq);
    if (!entry_id.empty()) {
      EXPECT_EQ(report->findings[0].entry_id, entry_id);
    }
    // Other chains are unaffected.
    auto other = platform().audit->verify(b_.id);
    ASSERT_TRUE(other);
    EXPECT_TRUE(other->findings.empty());
  };

  // Altered: one field of one entry.
  ASSERT_EQ(raw_sql(unlock + "UPDATE audit_logs SET actor_ip = '10.6.6.6' WHERE id = '" + victim.id + "'" + relock),
            "");
  expect_finding(victim.id, victim.seq);
  ASSERT_EQ(raw_sql(unlock + "UPDATE audit_logs SET actor_ip = '" + victim.actor_ip + "' WHERE id = '" + victim.id +
                    "'" + relock),
            "");
  ASSERT_TRUE(platform().audit->verify(a_.id)->findings.empty());

  // Reordered: two entries swap places.
  const audit::Entry next = (*chain)[3];
  ASSERT_EQ(raw_sql(unlock + "UPDATE audit_logs SET seq = -1 WHERE id = '" + victim.id +
                    "'; UPDATE audit_logs SET seq = " + std::to_string(victim.seq) + " WHERE id = '" + next.id +
                    "'; UPDATE audit_logs SET seq = " + std::to_string(next.seq) + " WHERE id = '" + victim.id + "'" +
                    relock),
            "");
  expect_finding(next.id, victim.seq);
  ASSERT_EQ(raw_sql(unlock + "UPDATE audit_logs SET seq = -1 WHERE id = '" + victim.id +
                    "'; UPDATE audit_logs SET seq = " + std::to_string(next.seq) + " WHERE id = '" + next.id +
                    "'; UPDATE audit_logs SET seq = " + std::to_string(victim.seq) + " WHERE id = '" + victim.id + "'" +
                    relock),
            "");
  ASSERT_TRUE(platform().audit->verify(a_.id)->findings.empty());

  // Removed from the middle, then the last one too: the checkpoint still proves the rewrite.
  ASSERT_EQ(raw_sql(unlock + "DELETE FROM audit_logs WHERE id = '" + victim.id + "'" + relock), "");
  expect_finding(next.id, victim.seq);
  const audit::Entry last = chain->back();
  ASSERT_EQ(raw_sql(unlock + "DELETE FROM audit_logs WHERE chain_id = '" + a_.id +
                    "' AND seq >= " + std::to_string(victim.seq) +
                    "; UPDATE audit_chain_heads SET seq = " + std::to_string(victim.seq - 1) + ", hash = '" +
                    (*chain)[1].hash + "' WHERE chain_id = '" + a_.id + "'" + relock),
            "");
  EXPECT_TRUE(platform().audit->verify(a_.id)->findings.empty()) << "a consistent truncation passes the chain check";
  auto proven = platform().audit->verify_checkpoint(*checkpoint);
  ASSERT_TRUE(proven);
  ASSERT_EQ(proven->findings.size(), 1u);
  EXPECT_EQ(proven->findings[0].chain_id, a_.id);
  EXPECT_EQ(proven->findings[0].seq, last.seq);
}

TEST_P(AuditApiTest, VerifyFindsATenantWhoseWholeChainWasRemoved) {
  auto unknown = platform().audit->verify(std::string("01900000-0000-7000-8000-000000000000"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::not_found);
  const bool pg = GetParam().backend == Backend::postgres;
  ASSERT_EQ(raw_sql((pg ? "ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only; "
                        : "DROP TRIGGER audit_logs_no_delete; ") +
                    std::string("DELETE FROM audit_logs WHERE chain_id = '") + b_.id +
                    "'; DELETE FROM audit_chain_heads WHERE chain_id = '" + b_.id + "'"),
            "");
  auto report = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->findings.size(), 1u);
  EXPECT_EQ(report->findings[0].chain_id, b_.id);
  auto only_b = platform().audit->verify(b_.id);
  ASSERT_TRUE(only_b);
  EXPECT_EQ(only_b->findings.size(), 1u);
}

TEST_P(AuditApiTest, AnEntryLeftInATenantOutboxIsRelayedExactlyOnce) {
  // A change committed, then the process died before moving its entry: the entry is durable and moves later.
  auto r = platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    return platform().audit->append(
        tx, audit::Context{.actor_type = audit::ActorType::system, .actor_id = "test"},
        {.action = "test.crashed_before_relay", .resource_type = "test", .resource_id = "1"});
  });
  ASSERT_TRUE(r) << r.error().message;
  auto listed = [&] {
    int n = 0;
    for (const auto& e : all_entries()) n += e.action == "test.crashed_before_relay";
    return n;
  };
  const bool own_store = !platform().tenant_data->shares_control_plane(a_);
  EXPECT_EQ(listed(), own_store ? 0 : 1);  // shared tenants write straight into the chain
  constexpr tenancy::TenantStatement outbox_rows{"test_outbox_rows",
                                                 "SELECT id, entry FROM audit_outbox WHERE tenant_id = $1"};
  constexpr tenancy::TenantStatement outbox_put{"test_outbox_put",
                                                "INSERT INTO audit_outbox (tenant_id, id, entry) VALUES ($1, $2, $3)"};
  std::optional<storage::ResultSet> pending;
  ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
    auto rows = tx.execute(outbox_rows);
    if (!rows) return std::unexpected(rows.error());
    pending = std::move(*rows);
    return {};
  }));
  ASSERT_EQ(pending->rows.size(), own_store ? 1u : 0u);
  auto moved = platform().relay_pending_audit();
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(*moved, own_store ? 1 : 0);
  EXPECT_EQ(listed(), 1);
  if (own_store) {
    // The relay died after the entry reached the chain but before it left the outbox: it must not chain it twice.
    ASSERT_TRUE(platform().tenant_data->transact(a_, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      auto r = tx.execute(outbox_put, {pending->rows[0][0], pending->rows[0][1]});
      if (!r) return std::unexpected(r.error());
      return {};
    }));
    ASSERT_TRUE(platform().relay_pending_audit());
    EXPECT_EQ(listed(), 1);
  }
  auto again = platform().relay_pending_audit();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
  EXPECT_EQ(listed(), 1);
  auto report = platform().audit->verify(a_.id);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

TEST_P(AuditApiTest, TheServingRoleCannotUpdateOrDeleteEntries) {
  // Each refusal is the one meant (a connection failure or a typo in the SQL would also be an error).
  auto refused = [](const std::string& error, const std::string& why) {
    return ::testing::AssertionResult(error.find(why) != std::string::npos)
           << "expected \"" << why << "\", got: \"" << error << "\"";
  };
  if (GetParam().backend != Backend::postgres) {
    // SQLite has no roles: the triggers refuse UPDATE and DELETE for every connection.
    EXPECT_TRUE(refused(raw_sql("UPDATE audit_logs SET action = 'x'"), "audit_logs is append-only (UPDATE refused)"));
    EXPECT_TRUE(refused(raw_sql("DELETE FROM audit_logs"), "audit_logs is append-only (DELETE refused)"));
    return;
  }
  const std::string denied = "permission denied for table audit_logs";
  EXPECT_TRUE(refused(exec_pg(tp_->app_url(), "UPDATE audit_logs SET action = 'x'"), denied));
  EXPECT_TRUE(refused(exec_pg(tp_->app_url(), "DELETE FROM audit_logs"), denied));
  EXPECT_TRUE(refused(exec_pg(tp_->app_url(), "TRUNCATE audit_logs"), denied));
  // Not even with the retention switch: the serving role has no DELETE privilege.
  EXPECT_TRUE(refused(exec_pg(tp_->app_url(),
                              "BEGIN; SELECT set_config('atrium.audit_retention', 'on', true); "
                              "DELETE FROM audit_logs; COMMIT"),
                      denied));
  // The owner is refused by the trigger outside the retention job (in the platform scope, where it sees the entries).
  EXPECT_TRUE(refused(exec_pg(tp_->admin_url(), "SET app.platform_scope = 'on'; UPDATE audit_logs SET action = 'x'"),
                      "audit_logs is append-only (UPDATE refused)"));
  EXPECT_TRUE(refused(exec_pg(tp_->admin_url(), "SET app.platform_scope = 'on'; DELETE FROM audit_logs"),
                      "audit_logs is append-only (DELETE refused)"));
  EXPECT_EQ(exec_pg(tp_->app_url(), "SELECT count(*) FROM audit_logs"), "");
  auto report = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());
}

TEST_P(AuditApiTest, EntriesOutliveAPurgedTenantUntilRetention) {
  ASSERT_EQ(client_->call(Method::post, "/v1/projects", Json{{"name", "soon gone"}}, owner_b_).status, 201);
  ASSERT_EQ(client_->call(Method::delete_, "/v1/admin/tenants/" + b_.id + "?purge=true", std::nullopt, root_).status,
            204);
  auto b_entries = [&] {
    audit::Query q;
    q.chain_id = b_.id;
    q.limit = 500;
    auto page = platform().audit->list(q);
    EXPECT_TRUE(page);
    return page ? page->entries : std::vector<audit::Entry>{};
  };
  auto kept = b_entries();
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.front().action, "tenant.purged");
  auto report = platform().audit->verify(b_.id);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->findings.empty());

  // Not yet past the retention: nothing goes.
  auto none =
      platform().audit->apply_retention(platform().admin_db(), platform().clock().now() - std::chrono::days(365));
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_EQ(*none, 0);
  EXPECT_EQ(b_entries().size(), kept.size());
  // Past it: the chain goes, A's stays, and the platform chain records the run.
  auto deleted =
      platform().audit->apply_retention(platform().admin_db(), platform().clock().now() + std::chrono::hours(1));
  ASSERT_TRUE(deleted) << deleted.error().message;
  EXPECT_EQ(*deleted, static_cast<std::int64_t>(kept.size()));
  EXPECT_TRUE(b_entries().empty());
  auto entries = all_entries();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.front().action, "audit.retention_applied");
  EXPECT_EQ(entries.front().resource_id, b_.id);
  auto after = platform().audit->verify(std::nullopt);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->findings.empty());
}

INSTANTIATE_TEST_SUITE_P(All, AuditApiTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
