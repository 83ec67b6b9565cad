#include "daemon/loader.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace distorch {
namespace {

// One pread's worth of one tensor.
struct Chunk {
  size_t tensor;
  uint64_t begin;  // offset inside the tensor
  uint64_t size;
};

absl::Status ReadChunk(int fd, Resident& r, const Chunk& c, std::vector<uint8_t>& bounce) {
  const TensorInfo& t = r.tensors[c.tensor];
  const TensorSlot& slot = r.layout.slots[c.tensor];
  Arena& arena = *r.arenas[slot.arena];
  uint8_t* host = arena.host_data();
  uint8_t* dst;
  if (host != nullptr) {
    dst = host + slot.offset + c.begin;
  } else {
    bounce.resize(c.size);
    dst = bounce.data();
  }
  uint64_t done = 0;
  while (done < c.size) {
    ssize_t got = pread(fd, dst + done, c.size - done,
                        static_cast<off_t>(t.file_offset + c.begin + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("reading tensor '", t.name, "' at offset ",
                                                     t.file_offset + c.begin + done));
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat(
          "model file ended at offset ", t.file_offset + c.begin + done, " inside tensor '",
          t.name, "' (was it truncated while loading?)"));
    }
    done += static_cast<uint64_t>(got);
  }
  if (host == nullptr) return arena.Write(slot.offset + c.begin, dst, c.size);
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadIntoArenas(int fd, Resident& resident, const LoadOptions& options) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < resident.tensors.size(); ++i) {
    uint64_t n = resident.tensors[i].nbytes;
    for (uint64_t b = 0; b < n; b += options.chunk_bytes) {
      chunks.push_back({i, b, std::min(options.chunk_bytes, n - b)});
    }
  }
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<bool> failed{false};
  auto worker = [&] {
    std::vector<uint8_t> bounce;
    while (!failed.load(std::memory_order_relaxed)) {
      if (options.cancel != nullptr && options.cancel->load()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = absl::CancelledError("load cancelled");
        failed = true;
        return;
      }
      size_t i = next.fetch_add(1);
      if (i >= chunks.size()) return;
      absl::Status s = ReadChunk(fd, resident, chunks[i], bounce);
      if (!s.ok()) {
        absl::MutexLock lock(&mu);
        if (first_error.ok()) first_error = s;
        failed = true;
        return;
      }
      resident.bytes_loaded.fetch_add(chunks[i].size, std::memory_order_relaxed);
    }
  };
  int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(chunks.size())));
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  absl::MutexLock lock(&mu);
  return first_error;
}

}  // namespace distorch
