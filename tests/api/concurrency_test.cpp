// What must hold when requests race, through the real router on every isolation level and both backends: a hard
// quota admits exactly its limit of concurrent creations, invoices finalized at the same instant take gap-free
// numbers from their one sequence, and a refresh token raced by several clients is used once at most, its family
// then revoked with every token in it (the race found that a token issued to the winner escaped the revocation).
#include <gtest/gtest.h>

#include <algorithm>
#include <latch>
#include <mutex>
#include <set>
#include <thread>

#include "support/api_client.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_platform.hpp"
#include "support/test_support.hpp"

namespace atrium::test {
namespace {

using http::Method;
using storage::Backend;

constexpr int k_racers = 8;

class ConcurrencyTest : public ::testing::TestWithParam<IsolationCase> {
 protected:
  void SetUp() override {
    ATRIUM_MISSING_SERVICE(GetParam().backend == Backend::postgres && !postgres_url(), "ATRIUM_TEST_POSTGRES_URL");
    Config config;
    config.tenancy.cache_ttl_ms = 0;
    tp_ = TestPlatform::create(GetParam().backend, config);
    client_ = std::make_unique<ApiClient>(platform());
    ASSERT_TRUE(platform().users->create_user("root@atrium.test", "Root", "root-password", true,
                                              platform().audit->recorder({})));
    a_ = create_test_tenant(platform(), "alpha", GetParam().isolation);
    b_ = create_test_tenant(platform(), "beta", GetParam().isolation);
    owner_a_ = grant("owner@alpha.test", "password-alpha", "alpha").value("access_token", "");
    owner_b_ = grant("owner@beta.test", "password-beta", "beta").value("access_token", "");
    root_ = grant("root@atrium.test", "root-password", "").value("access_token", "");
  }
  void TearDown() override {
    if (tp_ && platform().background) platform().workers()->stop_workers();
  }

  app::Platform& platform() { return tp_->platform(); }

  Json grant(const std::string& email, const std::string& password, const std::string& tenant) {
    auto r = client_->password_grant(email, password, tenant);
    EXPECT_EQ(r.status, 200) << r.raw_body;
    return r.body;
  }

  // Runs `call(i)` on k_racers threads released at once; their answers by index.
  std::vector<ApiResponse> race(const std::function<ApiResponse(int)>& call) {
    std::vector<ApiResponse> out(k_racers);
    std::latch start(k_racers);
    std::vector<std::thread> threads;
    for (int i = 0; i < k_racers; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        out[static_cast<std::size_t>(i)] = call(i);
      });
    }
    for (auto& t : threads) t.join();
    return out;
  }

  std::unique_ptr<TestPlatform> tp_;
  std::unique_ptr<ApiClient> client_;
  tenancy::Tenant a_;
  tenancy::Tenant b_;
  std::string owner_a_, owner_b_, root_;
};

TEST_P(ConcurrencyTest, AHardQuotaAdmitsExactlyItsLimitOfConcurrentCreations) {
  auto limit = client_->call(Method::put, "/v1/entitlements/projects", Json{{"limit", 3}, {"enforcement", "hard"}},
                             root_, {{"X-Tenant-ID", a_.id}});
  ASSERT_EQ(limit.status, 200) << limit.raw_body;
  const auto answers = race([&](int i) {
    return client_->call(Method::post, "/v1/projects", Json{{"name", "p" + std::to_string(i)}}, owner_a_);
  });
  int created = 0, refused = 0;
  for (const auto& r : answers) {
    if (r.status == 201) ++created;
    if (r.status == 403 && r.body.value("type", "") == "/problems/quota-exceeded") ++refused;
  }
  EXPECT_EQ(created, 3);
  EXPECT_EQ(refused, k_racers - 3);
  auto listed = client_->call(Method::get, "/v1/projects?limit=100", std::nullopt, owner_a_);
  EXPECT_EQ(listed.body["data"].size(), 3u) << listed.raw_body;
  // Beta has no such limit: all of its racers create.
  const auto in_b = race([&](int i) {
    return client_->call(Method::post, "/v1/projects", Json{{"name", "q" + std::to_string(i)}}, owner_b_);
  });
  EXPECT_EQ(std::count_if(in_b.begin(), in_b.end(), [](const ApiResponse& r) { return r.status == 201; }), k_racers);
}

TEST_P(ConcurrencyTest, InvoicesFinalizedAtTheSameInstantTakeGapFreeNumbers) {
  // Drafts in both tenants (one sequence per prefix and month, shared by every tenant).
  std::vector<std::pair<std::string, std::string>> drafts;  // tenant id, invoice id
  for (const auto* t : {&a_, &b_}) {
    auto account = client_->call(Method::put, "/v1/billing-account",
                                 Json{{"legal_name", t->slug},
                                      {"email", "billing@" + t->slug + ".test"},
                                      {"currency", "USD"},
                                      {"payment_method", "pm_card_visa"}},
                                 root_, {{"X-Tenant-ID", t->id}});
    ASSERT_EQ(account.status, 200) << account.raw_body;
    for (int i = 0; i < k_racers / 2; ++i) {
      auto draft = client_->call(
          Method::post, "/v1/invoices",
          Json{{"lines", Json::array({Json{{"description", "Item"}, {"quantity", 1}, {"unit_amount", 100 + i}}})}},
          root_, {{"X-Tenant-ID", t->id}});
      ASSERT_EQ(draft.status, 201) << draft.raw_body;
      drafts.emplace_back(t->id, draft.body.value("id", ""));
    }
  }
  const auto answers = race([&](int i) {
    const auto& [tenant, id] = drafts[static_cast<std::size_t>(i)];
    return client_->call(Method::post, "/v1/invoices/" + id + "/finalize", std::nullopt, root_,
                         {{"X-Tenant-ID", tenant}});
  });
  std::set<std::string> prefixes;
  std::vector<std::int64_t> numbers;
  for (const auto& r : answers) {
    ASSERT_EQ(r.status, 200) << r.raw_body;
    const std::string number = r.body.value("number", "");
    const auto dash = number.rfind('-');
    ASSERT_NE(dash, std::string::npos) << number;
    prefixes.insert(number.substr(0, dash));
    numbers.push_back(std::stoll(number.substr(dash + 1)));
  }
  ASSERT_EQ(prefixes.size(), 1u) << "one month, one sequence";
  std::sort(numbers.begin(), numbers.end());
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    EXPECT_EQ(numbers[i], numbers[0] + static_cast<std::int64_t>(i)) << "a gap or a number given twice";
  }
  EXPECT_EQ(numbers[0], 1) << "the month's first invoices";
}

TEST_P(ConcurrencyTest, ARefreshTokenRacedByManyClientsIsUsedOnce) {
  const std::string refresh = grant("owner@alpha.test", "password-alpha", "alpha").value("refresh_token", "");
  ASSERT_FALSE(refresh.empty());
  const auto answers = race([&](int) {
    return client_->call(Method::post, "/v1/auth/token",
                         Json{{"grant_type", "refresh_token"}, {"refresh_token", refresh}});
  });
  std::vector<std::string> issued;
  for (const auto& r : answers) {
    if (r.status == 200) {
      issued.push_back(r.body.value("refresh_token", ""));
    } else {
      EXPECT_EQ(r.status, 400) << r.raw_body;
      EXPECT_EQ(r.body.value("error", ""), "invalid_grant") << r.raw_body;
    }
  }
  // Used once at most. The other presentations are reuse: the family is revoked, so whatever the first one was
  // issued (nothing, when the revocation came before its rotation) does not work either.
  ASSERT_LE(issued.size(), 1u) << "the token was used more than once";
  for (const auto& token : issued) {
    auto after =
        client_->call(Method::post, "/v1/auth/token", Json{{"grant_type", "refresh_token"}, {"refresh_token", token}});
    EXPECT_EQ(after.status, 400) << "a token issued in a raced rotation outlived the family: " << after.raw_body;
  }
}

INSTANTIATE_TEST_SUITE_P(Isolation, ConcurrencyTest, all_isolation_cases(), isolation_case_name);

}  // namespace
}  // namespace atrium::test
