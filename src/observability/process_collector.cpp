#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "observability/metrics.hpp"

namespace atrium::metrics {

namespace {

struct ProcessStats {
  double cpu_seconds = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
  double start_time_seconds = 0;
  double open_fds = 0;
  double max_fds = 0;
};

double boot_time_seconds() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double v = 0;
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

ProcessStats read_stats() {
  ProcessStats s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream in("/proc/self/stat");
  std::string line;
  std::getline(in, line);
  // Fields after the parenthesised command name, which may itself contain spaces.
  const auto close = line.rfind(')');
  if (close != std::string::npos) {
    std::istringstream fields(line.substr(close + 2));
    std::string f;
    std::vector<std::string> v;
    while (fields >> f) v.push_back(f);
    // v[0] is field 3 (state); utime=14, stime=15, starttime=22, vsize=23, rss=24 (1-based, man 5 proc).
    auto at = [&](int field) { return static_cast<std::size_t>(field - 3); };
    if (v.size() > at(24)) {
      s.cpu_seconds = (std::stod(v[at(14)]) + std::stod(v[at(15)])) / ticks;
      s.start_time_seconds = boot_time_seconds() + std::stod(v[at(22)]) / ticks;
      s.virtual_bytes = std::stod(v[at(23)]);
      s.resident_bytes = std::stod(v[at(24)]) * page;
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    int n = 0;
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    closedir(dir);
    s.open_fds = n - 1;  // the descriptor opendir itself holds
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) s.max_fds = static_cast<double>(limit.rlim_cur);
  return s;
}

void gauge_block(std::string& out, const char* name, const char* help, const char* type, double value) {
  append_family_header(out, name, help, type);
  append_sample(out, name, {}, {}, value);
}

}  // namespace

void register_process_collector(Registry& registry) {
  registry.add_collector([](std::string& out) {
    const ProcessStats s = read_stats();
    gauge_block(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter",
                s.cpu_seconds);
    gauge_block(out, "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", s.resident_bytes);
    gauge_block(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", s.virtual_bytes);
    gauge_block(out, "process_open_fds", "Number of open file descriptors.", "gauge", s.open_fds);
    gauge_block(out, "process_max_fds", "Maximum number of open file descriptors.", "gauge", s.max_fds);
    gauge_block(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge",
                s.start_time_seconds);
  });
}

}  // namespace atrium::metrics
