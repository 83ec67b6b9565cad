// The load pipeline's first stages, before any lock: the fd from its ticket,
// the header (validated, cut to the requested part, converted to the stored
// dtypes) and the model's key. The daemon never opens a path a client names.
#ifndef DISTORCH_DAEMON_LOAD_OPEN_MODEL_H_
#define DISTORCH_DAEMON_LOAD_OPEN_MODEL_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "daemon/fdpass/ticket_book.h"
#include "daemon/fdpass/unique_fd.h"
#include "daemon/load/dtype_convert.h"
#include "daemon/load/load_request.h"
#include "daemon/load/model_file.h"
#include "distorch/registry.h"

namespace distorch {

// A model file's header as a load uses it.
struct ModelHeader {
  ModelFile file;                  // the tensors as the file has them (the part only)
  std::vector<TensorInfo> stored;  // as the arenas will hold them (weight dtype)
};

// Reads and validates the header of `fd`, keeps the tensors of `part` (a
// canonical prefix set; empty = all) and computes their stored form. Errors
// start with "model 'NAME': ".
absl::StatusOr<ModelHeader> ReadModelHeader(int fd, const std::string& name,
                                            const std::vector<std::string>& part,
                                            const WeightDtype& dtype);

// The model's identity: the open file, the options that change bytes, the part.
ModelKey ModelKeyFor(const ModelFile& file, const WeightDtype& dtype,
                     const std::vector<std::string>& part);

// Stages 1-3 together: a loaded file's fd, header, dtype, part and key.
struct OpenedModel {
  UniqueFd fd;
  ModelHeader header;
  WeightDtype dtype;
  std::vector<std::string> part;  // canonical tensor prefixes
  ModelKey key;
};

// Checks the request's dtype and prefixes, takes the fd the ticket holds and
// reads its header. Errors come in that order (a bad dtype is refused before
// the ticket is spent).
absl::StatusOr<OpenedModel> OpenModel(TicketBook& tickets, const LoadArgs& args);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_OPEN_MODEL_H_
