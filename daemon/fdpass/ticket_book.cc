#include "daemon/fdpass/ticket_book.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace distorch {

std::string TicketBook::NewTicketLocked() {
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(rng_),
                         absl::Uniform<uint64_t>(rng_));
}

void TicketBook::ExpireLocked(absl::Time now) {
  absl::erase_if(files_, [now](const auto& kv) { return kv.second.expires < now; });
  absl::erase_if(offers_, [now](const auto& kv) { return kv.second.expires < now; });
}

std::string TicketBook::PutFile(UniqueFd fd) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  std::string ticket = NewTicketLocked();
  files_[ticket] = Entry<UniqueFd>{std::move(fd), absl::Now() + ttl_};
  return ticket;
}

absl::StatusOr<UniqueFd> TicketBook::TakeFile(const std::string& ticket) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  auto it = files_.find(ticket);
  if (it == files_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "file ticket '", ticket, "' is unknown, used or expired: PUT the model file's fd on ",
        "the fd channel right before Load (tickets live ", absl::FormatDuration(ttl_), ")"));
  }
  UniqueFd fd = std::move(it->second.value);
  files_.erase(it);
  return fd;
}

std::string TicketBook::Offer(FdOffer offer) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  std::string ticket = NewTicketLocked();
  offers_[ticket] = Entry<FdOffer>{std::move(offer), absl::Now() + ttl_};
  return ticket;
}

absl::StatusOr<FdOffer> TicketBook::TakeOffer(const std::string& ticket) {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
  auto it = offers_.find(ticket);
  if (it == offers_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "arena ticket '", ticket, "' is unknown, used or expired: GET it right after Load"));
  }
  FdOffer offer = std::move(it->second.value);
  offers_.erase(it);
  return offer;
}

void TicketBook::DropOffers(uint64_t owner) {
  absl::MutexLock lock(&mu_);
  absl::erase_if(offers_, [owner](const auto& kv) { return kv.second.value.owner == owner; });
}

void TicketBook::Expire() {
  absl::MutexLock lock(&mu_);
  ExpireLocked(absl::Now());
}

}  // namespace distorch
