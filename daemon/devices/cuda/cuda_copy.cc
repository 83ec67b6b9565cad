#include "daemon/devices/cuda/cuda_copy.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "daemon/devices/cuda/cuda_arena.h"
#include "daemon/fdpass/pread_full.h"
#include "distorch/units.h"

namespace distorch {

// A pinned buffer and the event recorded after the copies out of it, so its
// reader knows when it may overwrite it. Owned by one reader during a copy.
struct CudaCopyEngine::Staging {
  uint8_t* host = nullptr;
  cudaEvent_t copied = nullptr;
  uint64_t in_flight = 0;  // bytes queued from it, not yet counted as landed

  Staging() = default;
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ~Staging() {
    if (copied != nullptr) (void)cudaEventDestroy(copied);
    if (host != nullptr) (void)cudaFreeHost(host);
  }
};

namespace {

std::string Describe(const CopyChunk& chunk, uint64_t file_offset) {
  for (const CopyChunk::Piece& p : chunk.pieces) {
    uint64_t begin = chunk.file_offset + p.buffer_offset;
    if (file_offset >= begin && file_offset < begin + p.size && !p.name.empty()) {
      return absl::StrCat("tensor '", std::string(p.name), "'");
    }
  }
  return "the model file";
}

absl::Status PreadChunk(int fd, uint8_t* dst, const CopyChunk& chunk) {
  return PreadFull(fd, dst, chunk.size, chunk.file_offset,
                   [&chunk](uint64_t at) { return Describe(chunk, at); });
}

}  // namespace

std::vector<CopyChunk> PlanCopyChunks(std::vector<FileRange> ranges, uint64_t chunk_bytes,
                                      uint64_t max_gap) {
  chunk_bytes = std::max<uint64_t>(chunk_bytes, 1);
  std::stable_sort(ranges.begin(), ranges.end(), [](const FileRange& a, const FileRange& b) {
    return a.file_offset < b.file_offset;
  });
  std::vector<CopyChunk> chunks;
  bool open = false;
  for (const FileRange& r : ranges) {
    for (uint64_t done = 0; done < r.size;) {
      const uint64_t at = r.file_offset + done;
      if (open) {
        const CopyChunk& c = chunks.back();
        const uint64_t end = c.file_offset + c.size;
        // Joins the open chunk only going forward, within the gap, with room.
        open = at >= end && at - end <= max_gap && at - c.file_offset < chunk_bytes;
      }
      if (!open) {
        chunks.emplace_back();
        chunks.back().file_offset = at;
        open = true;
      }
      CopyChunk& c = chunks.back();
      const uint64_t buffer_offset = at - c.file_offset;
      const uint64_t take = std::min(chunk_bytes - buffer_offset, r.size - done);
      c.pieces.push_back({buffer_offset, r.arena_offset + done, take, r.name});
      c.size = buffer_offset + take;
      done += take;
      if (c.size == chunk_bytes) open = false;
    }
  }
  return chunks;
}

CudaCopyEngine::CudaCopyEngine(int ordinal, Options options)
    : ordinal_(ordinal), options_(options) {}

CudaCopyEngine::~CudaCopyEngine() {
  absl::MutexLock lock(&mu_);
  ScopedCudaDevice on_device(ordinal_);
  staging_.clear();
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
}

absl::Status CudaCopyEngine::PrepareLocked() {
  const std::string gpu = absl::StrCat("cuda:", ordinal_);
  if (stream_ == nullptr) {
    // Non-blocking: never waits on, or holds up, the legacy default stream.
    if (absl::Status s = CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                                    absl::StrCat(gpu, ": creating the copy stream"));
        !s.ok()) {
      stream_ = nullptr;
      return s;
    }
  }
  const size_t want =
      static_cast<size_t>(std::max(1, options_.readers) * std::max(1, options_.buffers_per_reader));
  while (staging_.size() < want) {
    auto staging = std::make_unique<Staging>();
    void* host = nullptr;
    cudaError_t err = cudaHostAlloc(&host, options_.chunk_bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return CudaStatus(err,
                        absl::StrCat(gpu, ": cannot pin ", FormatBytes(options_.chunk_bytes),
                                     " of host memory for a staging buffer"),
                        absl::StatusCode::kResourceExhausted);
    }
    staging->host = static_cast<uint8_t*>(host);
    if (absl::Status s =
            CudaStatus(cudaEventCreateWithFlags(&staging->copied, cudaEventDisableTiming),
                       absl::StrCat(gpu, ": creating a copy event"));
        !s.ok()) {
      staging->copied = nullptr;
      return s;
    }
    staging_.push_back(std::move(staging));
  }
  return absl::OkStatus();
}

absl::Status CudaCopyEngine::CopyFileRanges(int fd, const std::vector<FileRange>& ranges,
                                            uint8_t* dst, uint64_t dst_size,
                                            std::atomic<uint64_t>* progress,
                                            const std::atomic<bool>* cancel) {
  for (const FileRange& r : ranges) {
    if (r.arena_offset > dst_size || r.size > dst_size - r.arena_offset) {
      return absl::OutOfRangeError(absl::StrCat(
          "cuda:", ordinal_, ": ",
          r.name.empty() ? "a range" : absl::StrCat("tensor '", std::string(r.name), "'"), " of ",
          r.size, " bytes at arena offset ", r.arena_offset, " does not fit the ", dst_size,
          "-byte arena"));
    }
  }
  const std::vector<CopyChunk> chunks =
      PlanCopyChunks(ranges, options_.chunk_bytes, options_.max_gap);
  if (chunks.empty()) return absl::OkStatus();

  absl::MutexLock lock(&mu_);
  ScopedCudaDevice on_device(ordinal_);
  if (!on_device.status().ok()) return on_device.status();
  if (absl::Status s = PrepareLocked(); !s.ok()) return s;
  const cudaStream_t stream = stream_;
  const int per_reader = std::max(1, options_.buffers_per_reader);
  const int readers = static_cast<int>(
      std::min<size_t>(static_cast<size_t>(std::max(1, options_.readers)), chunks.size()));
  std::vector<Staging*> staging;
  for (auto& s : staging_) staging.push_back(s.get());

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex error_mu;
  absl::Status first_error;
  auto fail = [&](absl::Status s) {
    absl::MutexLock error_lock(&error_mu);
    if (first_error.ok()) first_error = std::move(s);
    failed = true;
  };
  auto land = [progress](Staging& s) {
    if (progress != nullptr) progress->fetch_add(s.in_flight, std::memory_order_relaxed);
    s.in_flight = 0;
  };
  const std::string gpu = absl::StrCat("cuda:", ordinal_);
  auto reader = [&](int r) {
    ScopedCudaDevice reader_device(ordinal_);
    if (!reader_device.status().ok()) return fail(reader_device.status());
    for (int k = 0; !failed.load(std::memory_order_relaxed); ++k) {
      if (cancel != nullptr && cancel->load()) return fail(absl::CancelledError("load cancelled"));
      const size_t i = next.fetch_add(1);
      if (i >= chunks.size()) return;
      const CopyChunk& chunk = chunks[i];
      Staging& s = *staging[static_cast<size_t>(r * per_reader + k % per_reader)];
      // The copies queued from this buffer last time must finish before the
      // buffer is overwritten.
      if (absl::Status st =
              CudaStatus(cudaEventSynchronize(s.copied), absl::StrCat(gpu, ": waiting for a copy"));
          !st.ok()) {
        return fail(st);
      }
      land(s);
      if (absl::Status st = PreadChunk(fd, s.host, chunk); !st.ok()) return fail(st);
      for (const CopyChunk::Piece& p : chunk.pieces) {
        cudaError_t err = cudaMemcpyAsync(dst + p.arena_offset, s.host + p.buffer_offset, p.size,
                                          cudaMemcpyHostToDevice, stream);
        if (err != cudaSuccess) {
          return fail(CudaStatus(err, absl::StrCat(gpu, ": queueing a ", p.size,
                                                   "-byte copy to arena offset ", p.arena_offset)));
        }
        s.in_flight += p.size;
      }
      if (absl::Status st = CudaStatus(cudaEventRecord(s.copied, stream),
                                       absl::StrCat(gpu, ": recording a copy event"));
          !st.ok()) {
        return fail(st);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int r = 1; r < readers; ++r) pool.emplace_back(reader, r);
  reader(0);
  for (std::thread& t : pool) t.join();

  // Whatever happened, nothing may still read a staging buffer or write the
  // arena after we return.
  absl::Status drained = CudaStatus(cudaStreamSynchronize(stream),
                                    absl::StrCat(gpu, ": finishing copies into the arena"));
  for (Staging* s : staging) {
    if (first_error.ok() && drained.ok()) {
      land(*s);
    } else {
      s->in_flight = 0;
    }
  }
  absl::MutexLock error_lock(&error_mu);
  return first_error.ok() ? drained : first_error;
}

uint64_t CudaCopyEngine::Trim() {
  if (!mu_.TryLock()) return 0;  // a copy is running; it needs its buffers
  uint64_t freed = staging_.size() * options_.chunk_bytes;
  {
    ScopedCudaDevice on_device(ordinal_);
    staging_.clear();
  }
  mu_.Unlock();
  return freed;
}

uint64_t CudaCopyEngine::staging_bytes() {
  absl::MutexLock lock(&mu_);
  return staging_.size() * options_.chunk_bytes;
}

struct CudaArenaLoads::Load {
  CudaArena* arena;
  std::vector<FileRange> ranges;
  absl::Status status;
};

CudaArenaLoads::CudaArenaLoads() = default;
CudaArenaLoads::~CudaArenaLoads() { (void)Wait(); }

bool CudaArenaLoads::Claim(Arena& arena, FileRange range) {
  auto* cuda = dynamic_cast<CudaArena*>(&arena);
  if (cuda == nullptr) return false;
  auto it = std::find_if(loads_.begin(), loads_.end(),
                         [cuda](const auto& load) { return load->arena == cuda; });
  if (it == loads_.end()) {
    loads_.push_back(std::make_unique<Load>(Load{cuda, {}, absl::OkStatus()}));
    it = loads_.end() - 1;
  }
  (*it)->ranges.push_back(range);
  return true;
}

void CudaArenaLoads::Start(int fd, std::atomic<uint64_t>* progress,
                           const std::atomic<bool>* cancel) {
  for (const auto& load : loads_) {
    Load* l = load.get();
    threads_.emplace_back([l, fd, progress, cancel] {
      l->status = l->arena->FillFromFile(fd, l->ranges, progress, cancel);
    });
  }
}

absl::Status CudaArenaLoads::Wait() {
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  for (const auto& load : loads_) {
    if (!load->status.ok()) return load->status;
  }
  return absl::OkStatus();
}

}  // namespace distorch
