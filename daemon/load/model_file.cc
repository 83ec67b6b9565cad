#include "daemon/load/model_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/fdpass/pread_full.h"
#include "distorch/gguf.h"
#include "distorch/safetensors.h"

namespace distorch {
namespace {

// The GGUF parser asks for longer prefixes until its header fits; each tensor
// keeps its exact byte size (quantised blocks as kRaw) and its ggml type name.
absl::StatusOr<ModelFile> ReadGguf(int fd, ModelFile model) {
  absl::StatusOr<GgufHeader> header =
      ReadGgufHeader(model.file_size, [fd](uint64_t length, std::string* out) {
        out->resize(length);
        return PreadFull(fd, out->data(), length, 0, "the model header");
      });
  if (!header.ok()) return header.status();
  model.format = "gguf";
  model.tensors.reserve(header->tensors.size());
  model.tensor_type_names.reserve(header->tensors.size());
  for (GgufTensor& t : header->tensors) {
    model.tensors.push_back(std::move(t.info));
    model.tensor_type_names.push_back(std::move(t.ggml_type_name));
  }
  return model;
}

}  // namespace

absl::StatusOr<ModelFile> ReadModelFile(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat model file");
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError("the passed fd is not a regular file");
  }
  ModelFile model;
  model.file_size = static_cast<uint64_t>(st.st_size);
  model.identity =
      absl::StrCat(st.st_dev, ":", st.st_ino, ":", st.st_size, ":",
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec);
  char prefix[8];
  if (model.file_size < sizeof(prefix)) {
    return absl::InvalidArgumentError(absl::StrCat("model file is ", model.file_size,
                                                   " bytes: too short to be safetensors or GGUF"));
  }
  if (absl::Status s = PreadFull(fd, prefix, sizeof(prefix), 0, "the model header"); !s.ok())
    return s;
  if (std::memcmp(prefix, "GGUF", 4) == 0) return ReadGguf(fd, std::move(model));
  absl::StatusOr<uint64_t> header_bytes =
      ParseSafetensorsPrefix(absl::string_view(prefix, sizeof(prefix)), model.file_size);
  if (!header_bytes.ok()) return header_bytes.status();
  std::string json(*header_bytes, '\0');
  if (absl::Status s = PreadFull(fd, json.data(), json.size(), 8, "the model header"); !s.ok())
    return s;
  absl::StatusOr<SafetensorsHeader> header =
      ParseSafetensorsHeader(json, *header_bytes, model.file_size);
  if (!header.ok()) return header.status();
  model.format = "safetensors";
  model.tensors = std::move(header->tensors);
  return model;
}

absl::Status KeepTensorPart(ModelFile& file, const std::vector<std::string>& prefixes) {
  if (prefixes.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<size_t>> selected = SelectTensorPart(file.tensors, prefixes);
  if (!selected.ok()) return selected.status();
  std::vector<TensorInfo> tensors;
  std::vector<std::string> type_names;
  tensors.reserve(selected->size());
  for (size_t i : *selected) {
    tensors.push_back(std::move(file.tensors[i]));
    if (!file.tensor_type_names.empty()) type_names.push_back(std::move(file.tensor_type_names[i]));
  }
  file.tensors = std::move(tensors);
  file.tensor_type_names = std::move(type_names);
  return absl::OkStatus();
}

}  // namespace distorch
