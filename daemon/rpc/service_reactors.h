// The two streaming reactors of BrokerService: a session's bidi stream and a
// load's progress stream. Each deletes itself in OnDone.
#ifndef DISTORCH_DAEMON_RPC_SERVICE_REACTORS_H_
#define DISTORCH_DAEMON_RPC_SERVICE_REACTORS_H_

#include <deque>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "daemon/broker.h"
#include "daemon/rpc/service.h"

namespace distorch {

// One client session: open while the stream is. The first message must be a
// Hello; the session ends (after the grace period) when the stream closes,
// whether the client said goodbye or died.
//
// Thread contract. gRPC runs OnReadDone, OnWriteDone and OnDone on its
// callback threads: reads are serial among themselves, as are writes, but a
// read and a write callback may run at once. Push comes from any thread (the
// service's eviction notices, under BrokerService::mu_, which also keeps this
// object alive: OnDone unregisters under it before `delete this`). Every
// field below mu_ is read and written only under mu_, and no gRPC call
// (StartWrite, Finish) is made while holding it. `request_` belongs to the
// read chain alone (StartRead hands it to gRPC, OnReadDone reads it), so it
// needs no lock. outbox_.front() is the message gRPC is writing: only
// OnWriteDone pops it, and push_back never moves it.
class SessionReactor : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent> {
 public:
  explicit SessionReactor(BrokerService* service);
  // Queues an event for the client; safe from any thread.
  void Push(v1::SessionEvent event) ABSL_LOCKS_EXCLUDED(mu_);

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void FinishOnce(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  BrokerService* const service_;
  v1::SessionRequest request_;  // the read chain's; see above
  absl::Mutex mu_;
  SessionId session_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::SessionEvent> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// One Load call: the broker loads on a worker thread; the reactor streams the
// latest progress (older progress is dropped, never queued) and then the result.
//
// Thread contract. Two threads touch it: `worker_` (Run, and OfferProgress from
// the broker's progress callback) and gRPC's callback threads (OnWriteDone,
// OnDone). Every field below mu_ is read and written only under mu_; Pump
// decides under mu_ and makes the gRPC call (StartWrite, Finish) after
// releasing it. `in_flight_` is written only while no write is in flight
// (writing_ false) and gRPC reads it until OnWriteDone. `broker_` and `args_`
// are set by the constructor and read-only; `worker_` is touched only by the
// constructor and OnDone (which gRPC runs after the handler has returned the
// reactor), never by the worker itself.
class LoadReactor : public grpc::ServerWriteReactor<v1::LoadEvent> {
 public:
  LoadReactor(Broker* broker, LoadArgs args);
  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnDone() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  void OfferProgress(uint64_t loaded, uint64_t total) ABSL_LOCKS_EXCLUDED(mu_);
  // Starts the next write or the Finish, if one is due. Takes the lock.
  void Pump() ABSL_LOCKS_EXCLUDED(mu_);

  Broker* const broker_;
  const LoadArgs args_;
  std::thread worker_;  // see the thread contract
  absl::Mutex mu_;
  v1::LoadEvent in_flight_ ABSL_GUARDED_BY(mu_);
  std::optional<v1::LoadProgress> progress_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::StatusOr<LoadOutcome>> outcome_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool result_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_RPC_SERVICE_REACTORS_H_
