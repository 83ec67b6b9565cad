// The "acquire-or-attach" stage's decision, made under the broker's placement
// lock: which existing residency of the same model a load shares, or the key
// of the residency it creates. Pure: the registry's candidates and the
// residents come in as arguments.
#ifndef DISTORCH_DAEMON_LOAD_RESIDENCY_CHOICE_H_
#define DISTORCH_DAEMON_LOAD_RESIDENCY_CHOICE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "daemon/load/resident.h"
#include "distorch/registry.h"

namespace distorch {

struct ResidencyChoice {
  std::optional<std::pair<ResidencyId, ModelKey>> attach;
  ModelKey new_key;  // when !attach
};

// Finds a residency's resident (null when it is gone).
using FindResidentFn = std::function<std::shared_ptr<const Resident>(ResidencyId)>;

// `same`: the residencies of the same model (Registry::FindSameModel), oldest
// first. Without own_placement the shared residency wins (sharing is the
// point), else the oldest; with it, only one placed exactly as asked
// (canonical `allocation` and `compute`), else a new key carrying the
// placement (or the shared key, when no shared residency is left).
ResidencyChoice ChooseResidency(const std::vector<std::pair<ResidencyId, ModelKey>>& same,
                                const ModelKey& model, bool own_placement,
                                const std::string& allocation, const std::string& compute,
                                const FindResidentFn& find);

// The note a load gets when it shares a residency placed otherwise than it
// asked; "" when it asked for nothing in particular or got what it asked.
// `asked_*` are the request's raw fields, `wanted_*` their canonical forms.
std::string SharedPlacementNote(const Resident& current, const std::string& asked_allocation,
                                const std::string& asked_compute,
                                const std::string& wanted_allocation,
                                const std::string& wanted_compute);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_RESIDENCY_CHOICE_H_
