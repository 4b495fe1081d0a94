// Custom domains through the real router, on every backend and isolation level, with a real DNS server (dnsmasq):
// a tenant claims a host name, proves it by the TXT record, and from then on requests (and sign-ins) for that host
// act in the tenant; a certificate for it is checked and kept for SNI; limits.customDomains refuses the one over the
// limit; another tenant can claim the name but never verify it while the first holds it; roles and other tenants
// are refused.
#include <gtest/gtest.h>

#include "billing/quotas.hpp"
#include "domains/domains.hpp"
#include "support/api_client.hpp"
#include "support/dns_server.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_certificates.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

constexpr const char* k_host = "app.customer.test";

class DomainsApiTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    // An empty zone first: every challenge name is NXDOMAIN until a test publishes its record.
    dns_ = DnsServer::start("customer.test", {});
    ATRIUM_MISSING_SERVICE(dns_ == nullptr, "dnsmasq (/usr/sbin/dnsmasq, package dnsmasq-base)");
    Config config;
    config.tenancy.base_domain = "atrium.test";
    config.tenancy.dns_server = dns_->address();
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    add_test_member(platform(), a_.id, "member@alpha.test", "member-password", identity::Role::member);
    owner_a_ = token("owner@alpha.test", "password-alpha", "alpha");
    owner_b_ = token("owner@beta.test", "password-beta", "beta");
    member_a_ = token("member@alpha.test", "member-password", "alpha");
    root_ = token("root@atrium.test", "root-password", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  std::string token(const std::string& email, const std::string& password, const std::string& tenant,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    auto r = client_->password_grant(email, password, tenant, headers);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body.value("access_token", "");
  }

  ApiResponse as(const std::string& who, Method m, const std::string& path, const std::optional<Json>& body = {},
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return client_->call(m, path, body, who, headers);
  }

  // Restarts the DNS server on its port with `records` published.
  void publish(const std::vector<std::pair<std::string, std::string>>& records) {
    const std::uint16_t port = dns_->port();
    dns_.reset();
    dns_ = DnsServer::start("customer.test", records, port);
    ASSERT_NE(dns_, nullptr);
  }

  std::unique_ptr<DnsServer> dns_;
  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_, owner_b_, member_a_, root_;
};

TEST_P(DomainsApiTest, AVerifiedDomainResolvesToItsTenant) {
  auto claimed = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "App.Customer.Test"}});
  ASSERT_EQ(claimed.status, 201) << claimed.raw_body;
  EXPECT_EQ(claimed.body["hostname"], k_host);
  EXPECT_EQ(claimed.body["status"], "pending");
  EXPECT_EQ(claimed.body["verification"]["name"], "_atrium-challenge.app.customer.test");
  const std::string id = claimed.body["id"];
  const std::string value = claimed.body["verification"]["value"];
  ASSERT_TRUE(value.starts_with("atrium-domain-verification="));
  EXPECT_EQ(claimed.headers.get("Location").value_or(""), "/v1/domains/" + id);

  // Pending: the host names no tenant yet.
  EXPECT_EQ(as(root_, Method::get, "/v1/projects", std::nullopt, {{"Host", k_host}}).status, 403);
  // No record published: 409, still pending.
  auto early = as(owner_a_, Method::post, "/v1/domains/" + id + "/verify");
  EXPECT_EQ(early.status, 409) << early.raw_body;
  EXPECT_EQ(early.body["type"], "/problems/domain-not-verified");
  EXPECT_NE(early.body.value("detail", "").find("no TXT record"), std::string::npos) << early.raw_body;
  // A record with another value: 409 naming what was found.
  publish({{"_atrium-challenge.app.customer.test", "atrium-domain-verification=someone-else"}});
  auto wrong = as(owner_a_, Method::post, "/v1/domains/" + id + "/verify");
  EXPECT_EQ(wrong.status, 409) << wrong.raw_body;
  EXPECT_NE(wrong.body.value("detail", "").find("someone-else"), std::string::npos) << wrong.raw_body;
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/domains/" + id).body["status"], "pending");

  publish({{"_atrium-challenge.app.customer.test", "atrium-domain-verification=someone-else"},
           {"_atrium-challenge.app.customer.test", value}});
  auto verified = as(owner_a_, Method::post, "/v1/domains/" + id + "/verify");
  ASSERT_EQ(verified.status, 200) << verified.raw_body;
  EXPECT_EQ(verified.body["status"], "verified");
  EXPECT_TRUE(verified.body["verified_at"].is_string());

  // Requests for the host act in alpha: the super admin without X-Tenant-ID, alpha's owner; beta's token is a
  // contradiction (403); a sign-in on the host without `tenant` signs in to alpha.
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/projects", Json{{"name", "on alpha"}}).status, 201);
  auto by_root = as(root_, Method::get, "/v1/projects", std::nullopt, {{"Host", std::string(k_host) + ":8443"}});
  ASSERT_EQ(by_root.status, 200) << by_root.raw_body;
  ASSERT_EQ(by_root.body["data"].size(), 1u);
  EXPECT_EQ(by_root.body["data"][0]["name"], "on alpha");
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/projects", std::nullopt, {{"Host", k_host}}).status, 200);
  auto mismatch = as(owner_b_, Method::get, "/v1/projects", std::nullopt, {{"Host", k_host}});
  EXPECT_EQ(mismatch.status, 403) << mismatch.raw_body;
  EXPECT_EQ(mismatch.body["type"], "/problems/tenant-mismatch");
  const std::string on_host = token("owner@alpha.test", "password-alpha", "", {{"Host", k_host}});
  ASSERT_FALSE(on_host.empty());
  EXPECT_EQ(as(on_host, Method::get, "/v1/projects").body["data"].size(), 1u);

  // Audited in alpha's log.
  auto audit = as(owner_a_, Method::get, "/v1/audit-logs?resource_id=" + id);
  ASSERT_EQ(audit.status, 200) << audit.raw_body;
  std::vector<std::string> actions;
  for (const auto& e : audit.body["data"]) actions.push_back(e["action"]);
  std::sort(actions.begin(), actions.end());
  EXPECT_EQ(actions, (std::vector<std::string>{"custom_domain.created", "custom_domain.verified"}));

  // Removed: the host names no tenant again.
  EXPECT_EQ(as(owner_a_, Method::delete_, "/v1/domains/" + id).status, 204);
  EXPECT_EQ(as(root_, Method::get, "/v1/projects", std::nullopt, {{"Host", k_host}}).status, 403);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/domains/" + id).status, 404);
}

TEST_P(DomainsApiTest, AnotherTenantMayClaimAVerifiedNameButNeverVerifyIt) {
  auto a = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", k_host}});
  auto b = as(owner_b_, Method::post, "/v1/domains", Json{{"hostname", k_host}});
  ASSERT_EQ(a.status, 201) << a.raw_body;
  ASSERT_EQ(b.status, 201) << b.raw_body;
  EXPECT_NE(a.body["verification"]["value"], b.body["verification"]["value"]);
  // Beta's list has its claim alone; alpha's id is not found in beta.
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/domains").body["data"].size(), 1u);
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/domains/" + a.body["id"].get<std::string>()).status, 404);
  publish({{"_atrium-challenge.app.customer.test", a.body["verification"]["value"]},
           {"_atrium-challenge.app.customer.test", b.body["verification"]["value"]}});
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/domains/" + a.body["id"].get<std::string>() + "/verify").status, 200);
  auto second = as(owner_b_, Method::post, "/v1/domains/" + b.body["id"].get<std::string>() + "/verify");
  EXPECT_EQ(second.status, 409) << second.raw_body;
  EXPECT_EQ(as(owner_b_, Method::get, "/v1/domains").body["data"][0]["status"], "pending");
  // The host stays alpha's.
  auto by_root = as(root_, Method::get, "/v1/settings", std::nullopt, {{"Host", k_host}});
  ASSERT_EQ(by_root.status, 200) << by_root.raw_body;
  EXPECT_EQ(platform().domains->tenant_for_host(k_host).value_or(""), a_.id);
}

TEST_P(DomainsApiTest, NamesRolesAndTheCustomDomainsLimitAreChecked) {
  for (const char* bad :
       {"localhost", "10.0.0.1", "no_underscores.example", "single", "alpha.atrium.test", "deep.beta.atrium.test"}) {
    auto r = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", bad}});
    EXPECT_EQ(r.status, 400) << bad << " " << r.raw_body;
  }
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/domains", Json{}).status, 400);
  EXPECT_EQ(as(member_a_, Method::post, "/v1/domains", Json{{"hostname", "m.customer.test"}}).status, 403);
  EXPECT_EQ(as(member_a_, Method::get, "/v1/domains").status, 403);

  // limits.customDomains = 2 (an operator's override, as a plan's limits.customDomains gives): the third claim is
  // refused with the quota's problem, whatever the names' states; removing one makes room.
  auto limit = client_->call(Method::put, "/v1/entitlements/customDomains", Json{{"limit", 2}, {"enforcement", "hard"}},
                             root_, {{"X-Tenant-ID", a_.id}});
  ASSERT_EQ(limit.status, 200) << limit.raw_body;
  auto first = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "one.customer.test"}});
  ASSERT_EQ(first.status, 201);
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "one.customer.test"}}).status, 409);
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "two.customer.test"}}).status, 201);
  auto over = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "three.customer.test"}});
  EXPECT_EQ(over.status, 403) << over.raw_body;
  EXPECT_EQ(over.body["type"], "/problems/quota-exceeded");
  EXPECT_EQ(over.body["quota"], "customDomains");
  EXPECT_EQ(over.body["limit"], 2);
  EXPECT_EQ(as(owner_a_, Method::get, "/v1/domains").body["data"].size(), 2u);
  // Beta has no such limit.
  EXPECT_EQ(as(owner_b_, Method::post, "/v1/domains", Json{{"hostname", "three.customer.test"}}).status, 201);
  ASSERT_EQ(as(owner_a_, Method::delete_, "/v1/domains/" + first.body["id"].get<std::string>()).status, 204);
  EXPECT_EQ(as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", "three.customer.test"}}).status, 201);
}

TEST_P(DomainsApiTest, ACertificateIsCheckedAndServedForItsVerifiedHostOnly) {
  auto claimed = as(owner_a_, Method::post, "/v1/domains", Json{{"hostname", k_host}});
  ASSERT_EQ(claimed.status, 201);
  const std::string id = claimed.body["id"];
  const auto good = make_test_certificate(k_host);
  const auto other_host = make_test_certificate("www.customer.test");
  auto wrong = as(owner_a_, Method::put, "/v1/domains/" + id + "/certificate",
                  Json{{"certificate", other_host.certificate_pem}, {"private_key", other_host.private_key_pem}});
  EXPECT_EQ(wrong.status, 400) << wrong.raw_body;
  auto mismatched = as(owner_a_, Method::put, "/v1/domains/" + id + "/certificate",
                       Json{{"certificate", good.certificate_pem}, {"private_key", other_host.private_key_pem}});
  EXPECT_EQ(mismatched.status, 400) << mismatched.raw_body;
  auto stored = as(owner_a_, Method::put, "/v1/domains/" + id + "/certificate",
                   Json{{"certificate", good.certificate_pem}, {"private_key", good.private_key_pem}});
  ASSERT_EQ(stored.status, 200) << stored.raw_body;
  EXPECT_EQ(stored.body["certificate"]["subject"], "CN=app.customer.test");
  EXPECT_EQ(stored.body["certificate"]["fingerprint_sha256"].get<std::string>().size(), 64u);
  // The key never leaves: not in the answer.
  EXPECT_EQ(stored.raw_body.find("PRIVATE KEY"), std::string::npos);
  // Pending: not served yet.
  EXPECT_EQ(platform().domains->certificate_for(k_host), nullptr);
  publish({{"_atrium-challenge.app.customer.test", claimed.body["verification"]["value"]}});
  ASSERT_EQ(as(owner_a_, Method::post, "/v1/domains/" + id + "/verify").status, 200);
  auto served = platform().domains->certificate_for(k_host);
  ASSERT_NE(served, nullptr);
  EXPECT_EQ(served->chain_pem, good.certificate_pem);
  EXPECT_EQ(served->key_pem, good.private_key_pem);
  EXPECT_EQ(platform().domains->certificate_for("www.customer.test"), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Isolation, DomainsApiTest, all_isolation_cases(), isolation_case_name);

TEST(CustomDomainQuota, APlansLimitsCustomDomainsIsAHardCountedQuota) {
  auto quotas = billing::plan_quotas({}, Json::object(), Json{{"customDomains", 3}, {"projects", "unlimited"}});
  ASSERT_EQ(quotas.size(), 2u);
  EXPECT_EQ(quotas[0].name, "customDomains");
  EXPECT_EQ(quotas[0].metric, "");
  EXPECT_EQ(quotas[0].limit, 3);
  EXPECT_EQ(quotas[0].enforcement, billing::Enforcement::hard);
  EXPECT_TRUE(billing::is_counted_quota("customDomains"));
}

}  // namespace
}  // namespace atrium::test
