#include "tenancy/settings.hpp"

#include <gtest/gtest.h>

namespace atrium::tenancy {
namespace {

Json patch_json(const TenantSettings& s, const Json& patch) {
  auto r = patch_settings(s, patch);
  EXPECT_TRUE(r) << patch.dump() << ": " << (r ? "" : r.error().message);
  return r ? to_json(*r) : Json();
}

std::string refused(const Json& patch) {
  auto r = patch_settings(TenantSettings{}, patch);
  EXPECT_FALSE(r) << patch.dump();
  return r ? "" : r.error().message;
}

TEST(TenantSettings, DefaultsAreTheDocumentedOnes) {
  EXPECT_EQ(to_json(TenantSettings{}),
            Json::parse(R"({"branding": {"display_name": null, "logo_url": null, "primary_color": null},
                            "locale": "en-US", "timezone": "UTC", "api_version": null, "cors_origins": [],
                            "embed_frame_ancestors": [],
                            "webhooks": {"default_event_types": ["*"]},
                            "encryption": {"event_properties": false}})"));
}

TEST(TenantSettings, AMergePatchChangesTheMembersItNamesAndNullRestoresADefault) {
  TenantSettings s;
  auto changed = patch_settings(s, Json::parse(R"({"branding": {"display_name": "Acme", "primary_color": "#1A2b3c"},
                                                   "locale": "de-DE", "timezone": "Europe/Berlin",
                                                   "cors_origins": ["https://app.acme.test", "https://app.acme.test",
                                                                    "http://localhost:5173"]})"));
  ASSERT_TRUE(changed) << changed.error().message;
  EXPECT_EQ(changed->branding.display_name, "Acme");
  EXPECT_EQ(changed->branding.primary_color, "#1A2b3c");
  EXPECT_EQ(changed->branding.logo_url, "");
  EXPECT_EQ(changed->locale, "de-DE");
  EXPECT_EQ(changed->timezone, "Europe/Berlin");
  // Duplicates are dropped, order kept.
  EXPECT_EQ(changed->cors_origins, (std::vector<std::string>{"https://app.acme.test", "http://localhost:5173"}));

  // A second patch leaves what it does not name; null restores the default.
  const Json j = patch_json(*changed, Json::parse(R"({"branding": {"primary_color": null}, "timezone": null})"));
  EXPECT_EQ(j["branding"]["display_name"], "Acme");
  EXPECT_TRUE(j["branding"]["primary_color"].is_null());
  EXPECT_EQ(j["timezone"], "UTC");
  EXPECT_EQ(j["locale"], "de-DE");
  EXPECT_EQ(patch_json(*changed, Json::parse(R"({"branding": null})"))["branding"]["display_name"], nullptr);
}

TEST(TenantSettings, EveryMemberIsCheckedAndNothingIsAppliedOnError) {
  EXPECT_EQ(refused({{"theme", "dark"}}), "unknown member theme");
  EXPECT_EQ(refused({{"branding", {{"font", "x"}}}}), "unknown member branding.font");
  EXPECT_NE(refused({{"branding", {{"logo_url", "http://acme.test/logo.png"}}}}).find("https URL"), std::string::npos);
  EXPECT_NE(refused({{"branding", {{"primary_color", "red"}}}}).find("#rrggbb"), std::string::npos);
  EXPECT_NE(refused({{"branding", {{"display_name", std::string(201, 'x')}}}}).find("200"), std::string::npos);
  for (const char* bad : {"", "e", "english", "en_US", "en-", "en--US", "en-US-toolongsubtag"}) {
    EXPECT_NE(refused({{"locale", bad}}).find("BCP 47"), std::string::npos) << bad;
  }
  for (const char* bad : {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "zone.tab", "Europe", "Europe/"}) {
    EXPECT_NE(refused({{"timezone", bad}}).find("IANA"), std::string::npos) << bad;
  }
  EXPECT_NE(refused({{"cors_origins", {"*"}}}).find("origins"), std::string::npos);
  EXPECT_NE(refused({{"cors_origins", {"https://app.acme.test/path"}}}).find("origins"), std::string::npos);
  EXPECT_NE(refused({{"cors_origins", "https://app.acme.test"}}).find("array"), std::string::npos);
  EXPECT_NE(refused({{"webhooks", {{"default_event_types", Json::array()}}}}).find("at least one"), std::string::npos);
  EXPECT_NE(refused({{"webhooks", {{"default_event_types", {"Project Created"}}}}}).find("event types"),
            std::string::npos);
  EXPECT_EQ(refused({{"webhooks", {{"retries", 3}}}}), "unknown member webhooks.retries");
  EXPECT_NE(refused(Json::array()).find("object"), std::string::npos);
  // One bad member refuses the whole patch.
  auto r = patch_settings(TenantSettings{}, {{"locale", "fr-FR"}, {"timezone", "Nowhere/City"}});
  EXPECT_FALSE(r);
}

TEST(TenantSettings, TimeZonesComeFromTheSystemsTzDatabase) {
  EXPECT_TRUE(known_time_zone("UTC"));
  EXPECT_TRUE(known_time_zone("Europe/Berlin"));
  EXPECT_TRUE(known_time_zone("America/Argentina/Buenos_Aires"));
  EXPECT_TRUE(known_time_zone("Etc/GMT+5"));
  EXPECT_FALSE(known_time_zone("Europe/Atlantis"));
  EXPECT_FALSE(known_time_zone("zone1970.tab"));  // a file of the folder, not a zone
  EXPECT_FALSE(known_time_zone("Europe/../Europe/Berlin"));
}

TEST(TenantSettings, TheStoredFormReadsBackAndUnreadableMembersKeepTheirDefaults) {
  auto s = patch_settings(TenantSettings{}, {{"locale", "pt-BR"}, {"webhooks", {{"default_event_types", {"a.b"}}}}});
  ASSERT_TRUE(s);
  EXPECT_EQ(to_json(settings_from_json(to_json(*s))), to_json(*s));
  const TenantSettings read = settings_from_json({{"locale", "pt-BR"}, {"timezone", "Not/AZone"}, {"future", 1}});
  EXPECT_EQ(read.locale, "pt-BR");
  EXPECT_EQ(read.timezone, "UTC");
  EXPECT_EQ(to_json(settings_from_json(Json("garbage"))), to_json(TenantSettings{}));
}

}  // namespace
}  // namespace atrium::tenancy
