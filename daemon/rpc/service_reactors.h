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
class SessionReactor : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionEvent> {
 public:
  explicit SessionReactor(BrokerService* service);
  // Queues an event for the client; safe from any thread.
  void Push(v1::SessionEvent event);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  void FinishOnce(grpc::Status status);

  BrokerService* const service_;
  v1::SessionRequest request_;
  absl::Mutex mu_;
  SessionId session_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::SessionEvent> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// One Load call: the broker loads on a worker thread; the reactor streams the
// latest progress (older progress is dropped, never queued) and then the result.
class LoadReactor : public grpc::ServerWriteReactor<v1::LoadEvent> {
 public:
  LoadReactor(Broker* broker, LoadArgs args);
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  void Run();
  void OfferProgress(uint64_t loaded, uint64_t total);
  // Starts the next write or the Finish, if one is due. Takes the lock.
  void Pump();

  Broker* const broker_;
  const LoadArgs args_;
  std::thread worker_;
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
