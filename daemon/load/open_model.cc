#include "daemon/load/open_model.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "distorch/tensor_part.h"

namespace distorch {
namespace {

absl::Status Named(const std::string& name, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("model '", name, "': ", status.message()));
}

}  // namespace

absl::StatusOr<ModelHeader> ReadModelHeader(int fd, const std::string& name,
                                            const std::vector<std::string>& part,
                                            const WeightDtype& dtype) {
  absl::StatusOr<ModelFile> file = ReadModelFile(fd);
  if (!file.ok()) return Named(name, file.status());
  // A part of the file is a model of its own from here on: planned, laid out,
  // loaded and listed with only its tensors.
  if (absl::Status s = KeepTensorPart(*file, part); !s.ok()) return Named(name, s);
  // Planning, the arenas and the reply see the tensors as stored (converted).
  absl::StatusOr<std::vector<TensorInfo>> stored =
      StoredTensors(file->tensors, file->format, dtype);
  if (!stored.ok()) return Named(name, stored.status());
  return ModelHeader{*std::move(file), *std::move(stored)};
}

ModelKey ModelKeyFor(const ModelFile& file, const WeightDtype& dtype,
                     const std::vector<std::string>& part) {
  return ModelKey{file.identity, absl::StrCat("dtype=", dtype.name), "", part};
}

absl::StatusOr<OpenedModel> OpenModel(TicketBook& tickets, const LoadArgs& args) {
  OpenedModel model;
  // ComfyUI's spellings to one canonical name (it is part of the model's
  // key); refuses targets this build cannot convert to (dtype_convert.h).
  absl::StatusOr<WeightDtype> dtype = ParseWeightDtype(args.weight_dtype);
  if (!dtype.ok()) return dtype.status();
  model.dtype = *std::move(dtype);
  absl::StatusOr<std::vector<std::string>> part = CanonicalTensorPrefixes(args.tensor_prefixes);
  if (!part.ok()) return part.status();
  model.part = *std::move(part);
  absl::StatusOr<UniqueFd> fd = tickets.TakeFile(args.file_ticket);
  if (!fd.ok()) return fd.status();
  model.fd = *std::move(fd);
  absl::StatusOr<ModelHeader> header =
      ReadModelHeader(model.fd.get(), args.name, model.part, model.dtype);
  if (!header.ok()) return header.status();
  model.header = *std::move(header);
  model.key = ModelKeyFor(model.header.file, model.dtype, model.part);
  return model;
}

}  // namespace distorch
