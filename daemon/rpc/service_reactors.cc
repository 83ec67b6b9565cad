#include "daemon/rpc/service_reactors.h"

#include "daemon/log.h"
#include "daemon/rpc/proto_convert.h"

namespace distorch {

// ------------------------------------------------------------------ session

SessionReactor::SessionReactor(BrokerService* service) : service_(service) { StartRead(&request_); }

void SessionReactor::Push(v1::SessionEvent event) {
  // Taken under the lock: another thread may push_back meanwhile. The element
  // stays put (a deque's push_back moves none) until OnWriteDone pops it.
  const v1::SessionEvent* first = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    outbox_.push_back(std::move(event));
    if (!writing_) {
      writing_ = true;
      first = &outbox_.front();
    }
  }
  if (first != nullptr) StartWrite(first);
}

void SessionReactor::OnWriteDone(bool ok) {
  const v1::SessionEvent* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    outbox_.pop_front();
    if (ok && !finished_ && !outbox_.empty()) {
      next = &outbox_.front();
    } else {
      writing_ = false;
    }
  }
  if (next != nullptr) StartWrite(next);
}

void SessionReactor::OnReadDone(bool ok) {
  SessionId session;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
  }
  if (!ok) {  // the client closed the stream or died
    if (session != 0) {
      service_->Unregister(session);
      service_->broker()->CloseSession(session);
    }
    FinishOnce(grpc::Status::OK);
    return;
  }
  if (request_.has_hello() && session == 0) {
    session =
        service_->broker()->OpenSession(request_.hello().client_name(), request_.hello().pid());
    {
      absl::MutexLock lock(&mu_);
      session_ = session;
    }
    service_->Register(session, this);
    v1::SessionEvent started;
    started.mutable_started()->set_session_id(session);
    started.mutable_started()->set_fd_channel_path(service_->broker()->config().fd_channel_path());
    started.mutable_started()->set_daemon_version(DISTORCH_VERSION);
    Push(std::move(started));
  } else if (session == 0) {
    FinishOnce(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "the first message on a session stream must be a Hello"));
    return;
  }
  StartRead(&request_);
}

void SessionReactor::FinishOnce(grpc::Status status) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
  }
  Finish(status);
}

void SessionReactor::OnDone() {
  SessionId session;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
  }
  if (session != 0) service_->Unregister(session);
  delete this;
}

// ------------------------------------------------------------------ load

LoadReactor::LoadReactor(Broker* broker, LoadArgs args) : broker_(broker), args_(std::move(args)) {
  worker_ = std::thread([this] { Run(); });
}

void LoadReactor::Run() {
  absl::StatusOr<LoadOutcome> outcome = broker_->Load(
      args_, [this](uint64_t loaded, uint64_t total) { OfferProgress(loaded, total); });
  {
    absl::MutexLock lock(&mu_);
    outcome_ = std::move(outcome);
  }
  Pump();
}

void LoadReactor::OfferProgress(uint64_t loaded, uint64_t total) {
  {
    absl::MutexLock lock(&mu_);
    v1::LoadProgress p;
    p.set_bytes_loaded(loaded);
    p.set_bytes_total(total);
    progress_ = p;
  }
  Pump();
}

void LoadReactor::Pump() {
  enum { kNothing, kWrite, kFinish } action = kNothing;
  grpc::Status finish_status;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (result_sent_ || (stream_broken_ && outcome_.has_value())) {
      action = kFinish;
    } else if (outcome_.has_value() && !outcome_->ok()) {
      action = kFinish;
      finish_status = ToGrpcStatus(outcome_->status());
    } else if (outcome_.has_value()) {
      in_flight_.Clear();
      ToProto(**outcome_, in_flight_.mutable_result());
      result_sent_ = true;
      action = kWrite;
    } else if (progress_.has_value() && !stream_broken_) {
      in_flight_.Clear();
      *in_flight_.mutable_progress() = *progress_;
      progress_.reset();
      action = kWrite;
    }
    if (action == kWrite) writing_ = true;
    if (action == kFinish) finished_ = true;
  }
  if (action == kWrite) StartWrite(&in_flight_);
  if (action == kFinish) Finish(finish_status);
}

void LoadReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) stream_broken_ = true;  // the client went away; keep loading anyway
  }
  Pump();
}

void LoadReactor::OnDone() {
  if (worker_.get_id() == std::this_thread::get_id()) {
    worker_.detach();
  } else {
    worker_.join();
  }
  delete this;
}

}  // namespace distorch
