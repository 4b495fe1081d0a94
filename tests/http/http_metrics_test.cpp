#include <gtest/gtest.h>

#include <string>

#include "http/middleware.hpp"
#include "observability/metrics.hpp"

namespace atrium::http {
namespace {

std::size_t count_lines_starting(const std::string& text, const std::string& prefix) {
  std::size_t n = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    const auto end = text.find('\n', pos);
    if (text.compare(pos, prefix.size(), prefix) == 0) ++n;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return n;
}

Request request_for(std::string tenant) {
  Request req;
  req.method = Method::get;
  req.method_text = "GET";
  req.route = "/v1/projects";
  req.path = std::move(tenant);  // the test's tenant_of reads the tenant from here
  return req;
}

TEST(BoundedLabel, AdmitsTheFirstValuesAndFoldsTheRest) {
  metrics::BoundedLabel label(2, "other");
  EXPECT_EQ(label.admit("a"), "a");
  EXPECT_EQ(label.admit("b"), "b");
  EXPECT_EQ(label.admit("c"), "other");
  EXPECT_EQ(label.admit("a"), "a");  // an admitted value keeps its own label
  EXPECT_EQ(label.admitted(), 2u);
}

// The seed's tenant_id label, bounded: 10,000 tenants make at most limit + 2 label values per route and status, so
// the series count stays flat however many tenants there are.
TEST(HttpMetrics, TenantLabelStaysBoundedUnderTenThousandTenants) {
  metrics::Registry registry;
  HttpMetrics metrics(registry, {.tenant_of = [](const Request& r) { return r.path; }, .limit = 100});
  for (int i = 0; i < 10'000; ++i) metrics.record(request_for("tenant-" + std::to_string(i)), 200, 0.001);
  metrics.record(request_for(""), 200, 0.001);          // a request acting in no tenant
  metrics.record(request_for("tenant-7"), 200, 0.001);  // admitted early: still its own series
  const std::string text = registry.render();
  EXPECT_EQ(count_lines_starting(text, "http_requests_total{"), 102u) << "100 tenants, other, none";
  EXPECT_EQ(count_lines_starting(text, "http_request_duration_seconds_count{"), 102u);
  EXPECT_NE(text.find("http_requests_total{method=\"GET\",route=\"/v1/projects\",status=\"200\",tenant_id=\"other\"} "
                      "9900\n"),
            std::string::npos);
  EXPECT_NE(text.find("tenant_id=\"tenant-7\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("tenant_id=\"none\"} 1\n"), std::string::npos);
  EXPECT_EQ(text.find("tenant_id=\"tenant-100\""), std::string::npos);
}

TEST(HttpMetrics, WithoutTenantLabelTheSeriesCarryNoTenant) {
  metrics::Registry registry;
  HttpMetrics metrics(registry);
  for (int i = 0; i < 50; ++i) metrics.record(request_for("tenant-" + std::to_string(i)), 200, 0.001);
  const std::string text = registry.render();
  EXPECT_EQ(text.find("tenant_id"), std::string::npos);
  EXPECT_NE(text.find("http_requests_total{method=\"GET\",route=\"/v1/projects\",status=\"200\"} 50\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace atrium::http
