// Fuzzes cron schedules (src/jobs/cron.cpp): the expression a tenant gives a scheduled job and its time zone, and
// the slot search over them. Input: the expression, then after the first newline a time zone (tried only when it
// is one of a few real zones, so that the fuzzer does not spend its time on tz database misses), then eight bytes
// of a start instant. Every accepted schedule must answer consistently: the next slot lies after the start, is a
// slot itself (the last slot at or before it is itself) and the last slot at or before the start is not after it,
// with its successor (when one lies within the five years searched) after the start.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "check.hpp"
#include "jobs/cron.hpp"

namespace {

using atrium::fuzz::check;

constexpr std::array<std::string_view, 4> k_zones = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 256) return 0;  // longer expressions are refused by length alone; keep the search on the grammar
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view expression = input;
  std::string_view zone = "UTC";
  std::int64_t start_seconds = 1'767'225'600;  // 2026-01-01T00:00:00Z
  if (auto newline = input.find('\n'); newline != std::string_view::npos) {
    expression = input.substr(0, newline);
    std::string_view rest = input.substr(newline + 1);
    if (!rest.empty()) zone = k_zones[static_cast<unsigned char>(rest[0]) % k_zones.size()];
    if (rest.size() >= 9) {
      std::uint64_t raw = 0;
      std::memcpy(&raw, rest.data() + 1, sizeof raw);
      start_seconds = static_cast<std::int64_t>(raw % 4'102'444'800ULL);  // 1970 to 2100
    }
  }
  auto schedule = atrium::jobs::CronSchedule::parse(expression, zone);
  if (!schedule) {
    check(!schedule.error().message.empty(), "a refusal says why");
    return 0;
  }
  check(schedule->time_zone() == zone, "the schedule keeps its time zone");
  const std::chrono::system_clock::time_point start{std::chrono::seconds{start_seconds}};
  if (auto next = schedule->next_after(start)) {
    check(*next > start, "the next slot is after the start");
    check(*next - start <= std::chrono::hours{24 * 366 * 5}, "within five years");
    auto same = schedule->last_at_or_before(*next);
    check(same && *same == *next, "the next slot is a slot");
    auto before = schedule->last_at_or_before(*next - std::chrono::seconds{1});
    check(!before || *before <= start, "no slot lies between the start and the next slot");
  }
  if (auto last = schedule->last_at_or_before(start)) {
    check(*last <= start, "the last slot is not after the start");
    auto after = schedule->next_after(*last);
    // A successor may lie beyond the five years searched (March 1 on a Monday can be eleven years apart).
    check(!after || *after > *last, "a slot's successor is after it");
    check(!after || *after > start, "the last slot's successor is after the start");
  }
  return 0;
}
