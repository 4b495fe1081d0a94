// How a request names its tenant (src/tenancy/tenant_ref.cpp): ids and slugs have disjoint forms, and each
// source is read as the kind it carries.
#include "tenancy/tenant_ref.hpp"

#include <gtest/gtest.h>

#include <string>

namespace atrium::tenancy {
namespace {

constexpr std::string_view k_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
constexpr std::string_view k_id_upper = "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B";
constexpr std::string_view k_hex = "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b";
constexpr std::string_view k_hex_upper = "0190A1B2C3D47E5F8A9B0C1D2E3F4A5B";

TenantRef id(std::string_view v) { return {.kind = RefKind::id, .value = std::string(v)}; }
TenantRef slug(std::string_view v) { return {.kind = RefKind::slug, .value = std::string(v)}; }
const TenantRef none{};

TEST(TenantRef, IdShapedIsEveryUuidSpelling) {
  for (auto s : {k_id, k_id_upper, k_hex, k_hex_upper, std::string_view("0190a1b2-C3D4-7e5f-8A9B-0c1d2e3f4a5b")}) {
    EXPECT_TRUE(id_shaped(s)) << s;
  }
  for (auto s :
       {std::string_view(""), std::string_view("alpha"), k_id.substr(1), k_hex.substr(1),
        std::string_view("0190a1b2c3d47e5f8a9b0c1d2e3f4a5b0"), std::string_view("0190a1b2-c3d47e5f-8a9b-0c1d2e3f4a5b-"),
        std::string_view("g190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        std::string_view("0190a1b2c3d47e5f8a9b0c1d2e3f4a5g")}) {
    EXPECT_FALSE(id_shaped(s)) << s;
  }
}

TEST(TenantRef, SlugGrammarIsADnsLabelThatIsNotIdShaped) {
  for (auto s : {"a", "alpha", "acme-corp", "x1-2-3", "0", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5",
                 "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5"}) {
    EXPECT_TRUE(valid_slug(s)) << s;
  }
  EXPECT_TRUE(valid_slug(std::string(63, 'a')));
  EXPECT_FALSE(valid_slug(std::string(64, 'a')));
  for (auto s : {"", "-a", "a-", "Alpha", "al_pha", "al.pha", "al pha", "é"}) EXPECT_FALSE(valid_slug(s)) << s;
  // The forms of an id, in any case, with or without dashes.
  for (auto s : {k_id, k_id_upper, k_hex, k_hex_upper}) EXPECT_FALSE(valid_slug(s)) << s;
}

TEST(TenantRef, ClaimsAreIdsOnly) {
  EXPECT_EQ(id_ref(k_id), id(k_id));
  EXPECT_EQ(id_ref(k_id_upper), id(k_id));  // canonical lower case, the cache's key
  EXPECT_EQ(id_ref(k_hex), none);
  EXPECT_EQ(id_ref("alpha"), none);
  EXPECT_EQ(id_ref(""), none);
}

TEST(TenantRef, HeaderIsAnIdOrASlugByItsForm) {
  EXPECT_EQ(parse_tenant_ref(k_id), id(k_id));
  EXPECT_EQ(parse_tenant_ref(k_id_upper), id(k_id));
  EXPECT_EQ(parse_tenant_ref("alpha"), slug("alpha"));
  // Id-shaped text is never a slug, even when it is not an id the API takes.
  EXPECT_EQ(parse_tenant_ref(k_hex), none);
  EXPECT_EQ(parse_tenant_ref(k_hex_upper), none);
  EXPECT_EQ(parse_tenant_ref("Alpha"), none);
  EXPECT_EQ(parse_tenant_ref(""), none);
  EXPECT_EQ(slug_ref(k_id), none);
}

TEST(TenantRef, HostIsASlugOnly) {
  EXPECT_EQ(host_ref("alpha.atrium.test", "atrium.test"), slug("alpha"));
  EXPECT_EQ(host_ref("ALPHA.Atrium.Test:8443", "atrium.test"), slug("alpha"));
  EXPECT_EQ(host_ref(std::string(k_id) + ".atrium.test", "atrium.test"), none);  // names a tenant, but no slug
  EXPECT_EQ(host_ref(std::string(k_hex) + ".atrium.test", "atrium.test"), none);
  EXPECT_EQ(host_ref("a_b.atrium.test", "atrium.test"), none);
  // Hosts that name no tenant.
  EXPECT_EQ(host_ref("alpha.atrium.test", ""), std::nullopt);
  EXPECT_EQ(host_ref("atrium.test", "atrium.test"), std::nullopt);
  EXPECT_EQ(host_ref(".atrium.test", "atrium.test"), std::nullopt);
  EXPECT_EQ(host_ref("a.b.atrium.test", "atrium.test"), std::nullopt);
  EXPECT_EQ(host_ref("alpha.example.com", "atrium.test"), std::nullopt);
  EXPECT_EQ(host_ref("alphaatrium.test", "atrium.test"), std::nullopt);
  EXPECT_EQ(host_ref("[::1]:8080", "atrium.test"), std::nullopt);
}

}  // namespace
}  // namespace atrium::tenancy
