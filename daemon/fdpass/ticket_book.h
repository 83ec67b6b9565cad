// One-time tickets that tie a gRPC call to an fd-channel transfer: a client
// PUTs its model file's fd and names the ticket in Load; a Load reply names a
// ticket the client GETs to receive the arenas' memfds. Tickets are 128-bit
// random, single-use, and expire.
#ifndef DISTORCH_DAEMON_FDPASS_TICKET_BOOK_H_
#define DISTORCH_DAEMON_FDPASS_TICKET_BOOK_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "daemon/fdpass/unique_fd.h"

namespace distorch {

// Fds offered to a client, and what keeps them open until it takes them.
struct FdOffer {
  uint64_t owner = 0;  // the residency, so its offers can be dropped with it
  std::shared_ptr<const void> keepalive;
  std::vector<int> fds;  // borrowed from keepalive's objects
};

// Thread-safe.
class TicketBook {
 public:
  explicit TicketBook(absl::Duration ttl = absl::Seconds(60)) : ttl_(ttl) {}

  std::string PutFile(UniqueFd fd);
  // NotFound with a hint when the ticket is unknown, used, or expired.
  absl::StatusOr<UniqueFd> TakeFile(const std::string& ticket);

  std::string Offer(FdOffer offer);
  absl::StatusOr<FdOffer> TakeOffer(const std::string& ticket);
  // Drops every offer of `owner`: a residency that ended must not stay alive
  // (and counted) in an offer nobody collected.
  void DropOffers(uint64_t owner);
  // Drops expired tickets now (called periodically, so an uncollected offer
  // lets its memory go after the TTL even when no other ticket is used).
  void Expire();

 private:
  template <typename T>
  struct Entry {
    T value;
    absl::Time expires;
  };
  std::string NewTicketLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration ttl_;
  absl::Mutex mu_;
  absl::BitGen rng_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry<UniqueFd>> files_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry<FdOffer>> offers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_FDPASS_TICKET_BOOK_H_
