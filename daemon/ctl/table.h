// Plain-text tables for distorchctl's human output.
#ifndef DISTORCH_DAEMON_CTL_TABLE_H_
#define DISTORCH_DAEMON_CTL_TABLE_H_

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace distorch {

// Columns padded to their widest cell; no line ends in spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::FILE* out = stdout) const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      width.resize(std::max(width.size(), row.size()), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      // An empty last cell must not leave padding behind.
      line.erase(line.find_last_not_of(' ') + 1);
      std::fprintf(out, "%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_CTL_TABLE_H_
