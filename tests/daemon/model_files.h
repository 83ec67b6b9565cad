// Test model files on disk: small safetensors and GGUF files written byte by
// byte, in a temporary directory that removes itself.
#ifndef DISTORCH_TESTS_DAEMON_MODEL_FILES_H_
#define DISTORCH_TESTS_DAEMON_MODEL_FILES_H_

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/fdpass/unique_fd.h"

namespace distorch::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its files.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "distorch-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline UniqueFd OpenRead(const std::string& path) {
  return UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

struct StTensor {
  std::string name;
  std::string dtype;  // safetensors name: "F32"
  std::vector<int64_t> shape;
  std::string data;  // raw little-endian bytes
};

// A safetensors file: u64 header length, JSON header, data in the given order.
inline std::string SafetensorsBytes(const std::vector<StTensor>& tensors) {
  std::string json = "{";
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const StTensor& t = tensors[i];
    absl::StrAppend(&json, i ? "," : "", "\"", t.name, "\":{\"dtype\":\"", t.dtype,
                    "\",\"shape\":[", absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", offset,
                    ",", offset + t.data.size(), "]}");
    offset += t.data.size();
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  std::memcpy(out.data(), &n, 8);
  out += json;
  for (const StTensor& t : tensors) out += t.data;
  return out;
}

// Raw bytes of a vector of trivially copyable values.
template <typename T>
std::string Bytes(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// Builds GGUF v3 bytes field by field, little-endian.
class GgufWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;  // ggml order: ne[0] first
    uint32_t type;
    std::string data;
  };
  // A string metadata entry (long ones push the header past the parser's
  // first prefix).
  void AddString(const std::string& key, const std::string& value) { kv_.emplace_back(key, value); }
  void AddTensor(Tensor t) { tensors_.push_back(std::move(t)); }

  std::string Bytes(uint64_t alignment = 32) const {
    std::string out = "GGUF";
    U32(out, 3);
    U64(out, tensors_.size());
    U64(out, kv_.size());
    for (const auto& [key, value] : kv_) {
      Str(out, key);
      U32(out, 8);  // string
      Str(out, value);
    }
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const Tensor& t : tensors_) {
      Str(out, t.name);
      U32(out, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) U64(out, d);
      U32(out, t.type);
      U64(out, offset);
      offsets.push_back(offset);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      out.resize(data_start + offsets[i], '\0');
      out += tensors_[i].data;
    }
    return out;
  }

 private:
  static void U32(std::string& out, uint32_t v) { out.append(reinterpret_cast<char*>(&v), 4); }
  static void U64(std::string& out, uint64_t v) { out.append(reinterpret_cast<char*>(&v), 8); }
  static void Str(std::string& out, const std::string& s) {
    U64(out, s.size());
    out += s;
  }
  std::vector<std::pair<std::string, std::string>> kv_;
  std::vector<Tensor> tensors_;
};

// `n` bytes of a repeatable pattern seeded by `seed`.
inline std::string PatternBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

}  // namespace distorch::testing

#endif  // DISTORCH_TESTS_DAEMON_MODEL_FILES_H_
