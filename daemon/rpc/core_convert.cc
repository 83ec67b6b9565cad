#include "daemon/rpc/core_convert.h"

#include "absl/strings/str_cat.h"

namespace distorch {

absl::StatusOr<TensorInfo> FromProto(const v1::TensorMeta& meta) {
  TensorInfo t;
  t.name = meta.name();
  absl::StatusOr<DType> dtype = ParseDTypeName(meta.dtype());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", meta.name(), "': ", dtype.status().message()));
  }
  t.dtype = *dtype;
  t.shape.assign(meta.shape().begin(), meta.shape().end());
  t.nbytes = meta.nbytes();
  t.file_offset = meta.file_offset();
  return t;
}

void ToProto(const TensorInfo& tensor, v1::TensorMeta* out) {
  out->set_name(tensor.name);
  out->set_dtype(std::string(DTypeName(tensor.dtype)));
  for (int64_t d : tensor.shape) out->add_shape(d);
  out->set_nbytes(tensor.nbytes);
  out->set_file_offset(tensor.file_offset);
}

// The proto's reason field leaves the usual case (a block within its device's quota) empty.
const char* ReasonName(PlacementReason reason) {
  return reason == PlacementReason::kQuota ? "" : PlacementReasonName(reason);
}

void ToProto(const Placement& placement, const std::string& compute, const std::string& allocation,
             v1::Placement* out) {
  out->set_total_bytes(placement.total_bytes);
  out->set_compute_device(compute);
  out->set_allocation(allocation);
  for (const DevicePlan& d : placement.devices) {
    v1::DeviceBytes* db = out->add_devices();
    db->set_device(d.device.ToString());
    db->set_bytes(d.bytes);
    db->set_quota(d.quota);
    db->set_blocks(d.blocks);
  }
  for (size_t i = 0; i < placement.blocks.size(); ++i) {
    v1::BlockPlacement* b = out->add_blocks();
    b->set_block(placement.blocks[i].name);
    b->set_device(placement.block_device[i].ToString());
    b->set_bytes(placement.blocks[i].bytes);
    if (i < placement.block_reason.size()) b->set_reason(ReasonName(placement.block_reason[i]));
  }
  for (const std::string& note : placement.notes) out->add_notes(note);
}

}  // namespace distorch
