// The benchmark output convention: one JSON object per line for every figure,
// so docs/performance.md and scripts can collect them.
#ifndef DISTORCH_TESTS_BENCH_BENCH_JSON_H_
#define DISTORCH_TESTS_BENCH_BENCH_JSON_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>

namespace distorch::bench {

struct Figure {
  std::string bench;   // "planner"
  std::string metric;  // "plan_20k_tensors_8_devices"
  double value = 0;
  std::string unit;                // "ms", "GB/s", "x"
  std::optional<double> baseline;  // measured side by side in the same run
  std::optional<double> target;    // what the issue asks for
};

inline void Print(const Figure& f) {
  std::string line = "{\"bench\": \"" + f.bench + "\", \"metric\": \"" + f.metric +
                     "\", \"value\": " + std::to_string(f.value) + ", \"unit\": \"" + f.unit + "\"";
  if (f.baseline) {
    line += ", \"baseline\": " + std::to_string(*f.baseline);
    line += ", \"ratio\": " + std::to_string(*f.baseline == 0 ? 0 : f.value / *f.baseline);
  } else {
    line += ", \"baseline\": null, \"ratio\": null";
  }
  line += f.target ? ", \"target\": " + std::to_string(*f.target) : ", \"target\": null";
  std::printf("%s}\n", line.c_str());
  std::fflush(stdout);
}

// True when argv has --full (the documented, longer run).
inline bool FullRun(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--full") == 0) return true;
  return false;
}

using Clock = std::chrono::steady_clock;

inline double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// The best of `runs` timings: the least disturbed by other work on the machine.
inline double Best(int runs, const std::function<double()>& run) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) best = std::min(best, run());
  return best;
}

// A benchmark that cannot measure stops with a message and exit code 1.
[[noreturn]] inline void Die(const char* bench, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", bench, what.c_str());
  std::exit(1);
}

}  // namespace distorch::bench

#endif  // DISTORCH_TESTS_BENCH_BENCH_JSON_H_
