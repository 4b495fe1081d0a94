#include "observability/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace atrium::metrics {
namespace {

TEST(Metrics, CounterRendersWithEscapedLabels) {
  Registry r;
  auto& c = r.counter("things_total", "Things.", {"kind"});
  c.with({"a\"b\\c\nd"}).inc(2);
  const std::string text = r.render();
  EXPECT_NE(text.find("# TYPE things_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("things_total{kind=\"a\\\"b\\\\c\\nd\"} 2\n"), std::string::npos) << text;
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  auto& h = r.histogram("latency_seconds", "Latency.", {"route"}, {0.1, 1});
  auto& child = h.with({"/x"});
  child.observe(0.05);
  child.observe(0.1);  // bounds are inclusive (le)
  child.observe(0.5);
  child.observe(7);
  const std::string text = r.render();
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_sum{route=\"/x\"} 7.65\n"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_seconds_count{route=\"/x\"} 4\n"), std::string::npos) << text;
}

TEST(Metrics, ConcurrentIncrementsAreNotLost) {
  Registry r;
  auto& family = r.counter("n_total", "N.", {"t"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) family.with({"x"}).inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(family.with({"x"}).value(), 40000);
}

TEST(Metrics, ProcessCollectorReportsLiveValues) {
  Registry r;
  register_process_collector(r);
  const std::string text = r.render();
  for (const char* name : {"process_resident_memory_bytes ", "process_open_fds ", "process_max_fds ",
                           "process_start_time_seconds ", "process_virtual_memory_bytes "}) {
    const auto pos = text.find(std::string("\n") + name);
    ASSERT_NE(pos, std::string::npos) << name;
    const double value = std::stod(text.substr(pos + 1 + std::string(name).size()));
    EXPECT_GT(value, 0) << name;
  }
  EXPECT_NE(text.find("\nprocess_cpu_seconds_total "), std::string::npos);
}

}  // namespace
}  // namespace atrium::metrics
