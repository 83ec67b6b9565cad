// The "outcome" stage: a lease on a ready resident becomes the reply, with a
// one-time fd-channel ticket for its host arenas' memfds.
#ifndef DISTORCH_DAEMON_LOAD_LOAD_OUTCOME_H_
#define DISTORCH_DAEMON_LOAD_LOAD_OUTCOME_H_

#include <memory>

#include "daemon/fdpass/ticket_book.h"
#include "daemon/load/load_request.h"
#include "daemon/load/resident.h"

namespace distorch {

// The offer keeps `resident` (and so its arenas) alive until it is taken or
// expires, even if the residency ends meanwhile.
LoadOutcome MakeLoadOutcome(TicketBook& tickets, std::shared_ptr<const Resident> resident,
                            LeaseId lease, bool shared);

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_LOAD_OUTCOME_H_
