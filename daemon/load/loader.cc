#include "daemon/load/loader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/devices/cuda/gpu_loads.h"
#include "daemon/fdpass/pread_full.h"
#include "daemon/load/dtype_convert.h"
#include "daemon/load/lane_scheduler.h"
#include "daemon/load/splice_pipe.h"

namespace distorch {
namespace {

// Source bytes per converted chunk: small enough that the read, the
// conversion and the store stay in the core's cache (measured: 1 MiB and
// 256 KiB equal, 4 MiB 20% and 16 MiB 35% slower on a 2 MiB-L2 Xeon).
constexpr uint64_t kConvertChunkBytes = 1ULL << 20;

// One read (and maybe one conversion) of one tensor: `src_*` inside the
// tensor as the file has it, `dst_*` inside the tensor as the arena stores it.
struct Chunk {
  size_t tensor;
  uint64_t src_begin, src_size;
  uint64_t dst_begin, dst_size;
};

// What every reader thread shares; read-only during the load.
struct Job {
  int fd;
  Resident& resident;
  const std::vector<TensorInfo>& source;  // as in the file
  LoadOptions::HostCopy host_copy;
  std::vector<int> memfds;  // per arena: host memfd, or -1
};

// Per-thread buffers (and pipe), reused across chunks.
struct Scratch {
  std::vector<uint8_t> read;
  std::vector<uint8_t> converted;
  std::unique_ptr<SplicePipe> pipe;
  bool splice_unsupported = false;  // the file cannot be spliced: pread instead
};

absl::Status PreadFully(int fd, uint8_t* dst, uint64_t n, uint64_t offset, const TensorInfo& t) {
  return PreadFull(fd, dst, n, offset, absl::StrCat("tensor '", t.name, "'"));
}

// Stores a converted buffer into the arena's memfd (the kernel writes the
// pages: no faults, no zeroing).
absl::Status PwriteFully(int memfd, const uint8_t* src, uint64_t n, uint64_t arena_offset,
                         const TensorInfo& t) {
  uint64_t done = 0;
  while (done < n) {
    ssize_t put = pwrite(memfd, src + done, n - done, static_cast<off_t>(arena_offset + done));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      return absl::ErrnoToStatus(put < 0 ? errno : EIO,
                                 absl::StrCat("copying tensor '", t.name, "' into its arena"));
    }
    done += static_cast<uint64_t>(put);
  }
  return absl::OkStatus();
}

absl::Status LoadChunk(const Job& job, const Chunk& c, Scratch& scratch) {
  const TensorInfo& from = job.source[c.tensor];
  const TensorInfo& to = job.resident.tensors[c.tensor];
  const TensorSlot& slot = job.resident.layout.slots[c.tensor];
  Arena& arena = *job.resident.arenas[slot.arena];
  uint8_t* host = arena.host_data();
  const uint64_t file_offset = from.file_offset + c.src_begin;
  const uint64_t arena_offset = slot.offset + c.dst_begin;

  if (from.dtype == to.dtype) {
    const int memfd = job.memfds[slot.arena];
    if (host != nullptr && memfd >= 0 && job.host_copy == LoadOptions::HostCopy::kSplice &&
        !scratch.splice_unsupported) {
      if (scratch.pipe == nullptr) {
        absl::StatusOr<std::unique_ptr<SplicePipe>> pipe = SplicePipe::Open();
        if (!pipe.ok()) return pipe.status();
        scratch.pipe = *std::move(pipe);
      }
      absl::Status s = scratch.pipe->Copy(job.fd, file_offset, memfd, arena_offset, c.src_size,
                                          absl::StrCat("tensor '", from.name, "'"));
      if (!s.ok()) scratch.pipe.reset();  // it may still hold pages
      if (!absl::IsUnimplemented(s)) return s;
      scratch.splice_unsupported = true;  // some filesystems cannot splice
    }
    if (host != nullptr)
      return PreadFully(job.fd, host + arena_offset, c.src_size, file_offset, from);
    scratch.read.resize(c.src_size);
    if (absl::Status s = PreadFully(job.fd, scratch.read.data(), c.src_size, file_offset, from);
        !s.ok()) {
      return s;
    }
    return arena.Write(arena_offset, scratch.read.data(), c.src_size);
  }

  scratch.read.resize(c.src_size);
  if (absl::Status s = PreadFully(job.fd, scratch.read.data(), c.src_size, file_offset, from);
      !s.ok()) {
    return s;
  }
  // Host arenas with a memfd: convert into a small cache-resident buffer and
  // let the kernel store it (pwrite), as for plain copies; writing the
  // converted values through the mapping would fault and zero every page.
  const int memfd = job.memfds[slot.arena];
  const bool via_mapping = host != nullptr && memfd < 0;
  uint8_t* dst;
  if (via_mapping) {
    dst = host + arena_offset;
  } else {
    scratch.converted.resize(c.dst_size);
    dst = scratch.converted.data();
  }
  absl::Status converted = ConvertElements(from.dtype, to.dtype, scratch.read.data(), dst,
                                           c.src_size / DTypeSize(from.dtype));
  if (!converted.ok()) {
    return absl::Status(converted.code(),
                        absl::StrCat("tensor '", from.name, "': ", converted.message()));
  }
  if (via_mapping) return absl::OkStatus();
  if (host != nullptr) {
    return PwriteFully(memfd, dst, c.dst_size, arena_offset, from);
  }
  return arena.Write(arena_offset, dst, c.dst_size);
}

// DataLoss when the file no longer holds every tensor's bytes: checked before
// copying, so a file truncated since its header was read fails at once. One
// truncated during the copy reads as an early end (DataLoss) on every path.
absl::Status CheckFileCovers(int fd, const std::vector<TensorInfo>& source) {
  struct stat st;
  if (fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat model file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  for (const TensorInfo& t : source) {
    if (t.nbytes != 0 && t.file_offset + t.nbytes > size) {
      return TruncatedError(size, absl::StrCat("tensor '", t.name, "'"));
    }
  }
  return absl::OkStatus();
}

// Splits every tensor into chunks of at most `chunk_bytes` source bytes, on
// element boundaries when the tensor is converted.
absl::StatusOr<std::vector<Chunk>> PlanChunks(const std::vector<TensorInfo>& source,
                                              const std::vector<TensorInfo>& stored,
                                              uint64_t chunk_bytes) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < stored.size(); ++i) {
    const TensorInfo& from = source[i];
    const TensorInfo& to = stored[i];
    if (from.dtype == to.dtype) {
      if (from.nbytes != to.nbytes) {
        return absl::InternalError(absl::StrCat("tensor '", to.name, "': stored as ", to.nbytes,
                                                " bytes but the file has ", from.nbytes));
      }
      for (uint64_t b = 0; b < from.nbytes; b += chunk_bytes) {
        const uint64_t n = std::min(chunk_bytes, from.nbytes - b);
        chunks.push_back({i, b, n, b, n});
      }
      continue;
    }
    const uint64_t in_size = DTypeSize(from.dtype), out_size = DTypeSize(to.dtype);
    if (!IsFloatingDType(from.dtype) || !IsFloatingDType(to.dtype) || from.nbytes % in_size != 0 ||
        to.nbytes / out_size != from.nbytes / in_size) {
      return absl::InternalError(absl::StrCat("tensor '", to.name, "': cannot store ", from.nbytes,
                                              " bytes of ", DTypeName(from.dtype), " as ",
                                              to.nbytes, " bytes of ", DTypeName(to.dtype)));
    }
    const uint64_t elements = from.nbytes / in_size;
    // Small chunks: the read, the conversion and the store stay in cache.
    const uint64_t step =
        std::max<uint64_t>(1, std::min(chunk_bytes, kConvertChunkBytes) / in_size);
    for (uint64_t e = 0; e < elements; e += step) {
      const uint64_t n = std::min(step, elements - e);
      chunks.push_back({i, e * in_size, n * in_size, e * out_size, n * out_size});
    }
  }
  return chunks;
}

}  // namespace

absl::Status LoadIntoArenas(int fd, Resident& resident, const LoadOptions& options) {
  const std::vector<TensorInfo>& source =
      options.file_tensors != nullptr ? *options.file_tensors : resident.tensors;
  if (source.size() != resident.tensors.size()) {
    return absl::InternalError(absl::StrCat("loader given ", source.size(), " file tensors for ",
                                            resident.tensors.size(), " stored ones"));
  }
  absl::StatusOr<std::vector<Chunk>> planned =
      PlanChunks(source, resident.tensors, std::max<uint64_t>(options.chunk_bytes, 4096));
  if (!planned.ok()) return planned.status();
  // CUDA arenas: same-dtype chunks go to the GPUs' copy engines (pinned
  // staging, one thread per arena beside the host workers); the rest stay.
  CudaArenaLoads gpu_loads;
  std::vector<Chunk> chunks;
  for (const Chunk& c : *planned) {
    const TensorSlot& slot = resident.layout.slots[c.tensor];
    const TensorInfo& from = source[c.tensor];
    if (from.dtype != resident.tensors[c.tensor].dtype ||
        !gpu_loads.Claim(
            *resident.arenas[slot.arena],
            {from.file_offset + c.src_begin, slot.offset + c.dst_begin, c.src_size, from.name})) {
      chunks.push_back(c);
    }
  }

  Job job{fd, resident, source, options.host_copy, {}};
  for (const auto& arena : resident.arenas) {
    ArenaExport e = arena->Export();
    job.memfds.push_back(e.kind == ArenaExport::Kind::kHostMemfd ? e.memfd : -1);
  }
  if (absl::Status s = CheckFileCovers(fd, source); !s.ok()) return s;

  // Workers spread over arenas: writes into one memfd run one at a time.
  std::vector<size_t> arena_of_chunk;
  arena_of_chunk.reserve(chunks.size());
  for (const Chunk& c : chunks) arena_of_chunk.push_back(resident.layout.slots[c.tensor].arena);
  LaneScheduler scheduler(arena_of_chunk, resident.arenas.size());
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    Scratch scratch;
    std::optional<size_t> last_arena;
    while (!failed.load(std::memory_order_relaxed)) {
      if (options.cancel != nullptr && options.cancel->load()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = absl::CancelledError("load cancelled");
        failed = true;
        return;
      }
      std::optional<LaneScheduler::Grant> grant = scheduler.Next(last_arena);
      if (!grant.has_value()) return;
      last_arena = grant->lane;
      const Chunk& chunk = chunks[grant->item];
      absl::Status s = LoadChunk(job, chunk, scratch);
      scheduler.Done(grant->lane);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
      resident.bytes_loaded.fetch_add(chunk.dst_size, std::memory_order_relaxed);
    }
  };
  int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(chunks.size())));
  gpu_loads.Start(fd, &resident.bytes_loaded, options.cancel);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  absl::Status gpu = gpu_loads.Wait();
  absl::MutexLock lock(&mu);
  if (first_error.ok()) first_error = gpu;
  return first_error;
}

}  // namespace distorch
