#include "daemon/load/load_outcome.h"

#include <utility>

namespace distorch {

LoadOutcome MakeLoadOutcome(TicketBook& tickets, std::shared_ptr<const Resident> resident,
                            LeaseId lease, bool shared) {
  LoadOutcome out;
  out.model = resident->id;
  out.lease = lease;
  out.shared = shared;
  FdOffer offer;
  for (const auto& arena : resident->arenas) {
    ArenaExport e = arena->Export();
    if (e.kind == ArenaExport::Kind::kHostMemfd) offer.fds.push_back(e.memfd);
  }
  offer.owner = resident->id;
  offer.keepalive = resident;
  out.arena_ticket = tickets.Offer(std::move(offer));
  out.resident = std::move(resident);
  return out;
}

}  // namespace distorch
