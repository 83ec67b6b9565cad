// The benchmark output convention: one JSON object per line for every figure,
// so docs/performance.md and scripts can collect them.
#ifndef DISTORCH_TESTS_BENCH_BENCH_JSON_H_
#define DISTORCH_TESTS_BENCH_BENCH_JSON_H_

#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

namespace distorch::bench {

struct Figure {
  std::string bench;   // "planner"
  std::string metric;  // "plan_20k_tensors_8_devices"
  double value = 0;
  std::string unit;    // "ms", "GB/s", "x"
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

}  // namespace distorch::bench

#endif  // DISTORCH_TESTS_BENCH_BENCH_JSON_H_
