#include "distorch/tensor_part.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace distorch {
namespace {

std::string Quoted(const std::vector<std::string>& names) {
  return absl::StrJoin(names, ", ", [](std::string* out, const std::string& n) {
    absl::StrAppend(out, "'", n, "'");
  });
}

// How the file's tensor names begin: their distinct first components (up to
// `limit`), in file order, e.g. 'model.', 'cond_stage_model.'.
std::vector<std::string> NameStarts(const std::vector<TensorInfo>& tensors, size_t limit) {
  std::vector<std::string> starts;
  for (const TensorInfo& t : tensors) {
    size_t dot = t.name.find('.');
    std::string start = dot == std::string::npos ? t.name : t.name.substr(0, dot + 1);
    if (std::find(starts.begin(), starts.end(), start) != starts.end()) continue;
    if (starts.size() == limit) break;
    starts.push_back(std::move(start));
  }
  return starts;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> CanonicalTensorPrefixes(
    const std::vector<std::string>& prefixes) {
  if (prefixes.size() > kMaxTensorPrefixes) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefixes.size(), " tensor prefixes given; at most ", kMaxTensorPrefixes,
                     " are allowed: use shorter prefixes that cover several"));
  }
  for (size_t i = 0; i < prefixes.size(); ++i) {
    const std::string& p = prefixes[i];
    if (p.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor prefix ", i,
                       " is empty: give the start of tensor names (e.g. "
                       "'first_stage_model.'), or no prefixes for the whole file"));
    }
    if (p.size() > kMaxTensorPrefixBytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor prefix ", i, " is ", p.size(),
                                                     " bytes long; at most ", kMaxTensorPrefixBytes,
                                                     " are allowed"));
    }
    for (unsigned char c : p) {
      if (c < 0x20 || c == 0x7f) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor prefix ", i, " contains a control character (byte ",
                         static_cast<int>(c), "): tensor names have none"));
      }
    }
  }
  std::vector<std::string> sorted = prefixes;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // Sorted, a prefix comes right before the names it covers.
  std::vector<std::string> out;
  for (std::string& p : sorted) {
    if (!out.empty() && absl::StartsWith(p, out.back())) continue;
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<std::vector<size_t>> SelectTensorPart(const std::vector<TensorInfo>& tensors,
                                                     const std::vector<std::string>& prefixes) {
  std::vector<size_t> selected;
  selected.reserve(prefixes.empty() ? tensors.size() : 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    bool in = prefixes.empty();
    for (const std::string& p : prefixes) {
      if (in) break;
      in = absl::StartsWith(tensors[i].name, p);
    }
    if (in) selected.push_back(i);
  }
  if (selected.empty() && !prefixes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor prefixes ", Quoted(prefixes), " match no tensor of the model (its ",
                     tensors.size(), " tensor names begin with ", Quoted(NameStarts(tensors, 8)),
                     "): give prefixes of its tensor names"));
  }
  return selected;
}

std::string TensorPartLabel(const std::vector<std::string>& prefixes) {
  return absl::StrJoin(prefixes, ",");
}

}  // namespace distorch
