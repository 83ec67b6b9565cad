#include "daemon/devices/memfd_arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/fdpass/pread_full.h"
#include "distorch/units.h"

namespace distorch {
namespace {

absl::Status Errno(absl::string_view what, int err) {
  return absl::ErrnoToStatus(err, what);  // it appends strerror(err)
}

}  // namespace

absl::StatusOr<std::unique_ptr<MemfdArena>> MemfdArena::Create(
    DeviceId device, uint64_t bytes, absl::string_view label,
    std::shared_ptr<std::atomic<uint64_t>> accounted) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t size = std::max<uint64_t>(page, (bytes + page - 1) / page * page);
  std::string name = absl::StrCat("distorch:", device.ToString(), ":", label);
  UniqueFd fd(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return Errno("memfd_create", errno);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Errno("ftruncate", errno);
  // Allocate every page now: on a short machine this fails cleanly.
  if (int err = posix_fallocate(fd.get(), 0, static_cast<off_t>(size)); err != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat(device.ToString(), ": cannot allocate ", FormatBytes(size),
                     " of host memory for an arena: ", std::strerror(err)));
  }
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) {
    return Errno("sealing memfd size", errno);
  }
  void* data = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (data == MAP_FAILED) return Errno("mmap arena", errno);
  accounted->fetch_add(size);
  return std::unique_ptr<MemfdArena>(new MemfdArena(
      device, size, std::move(fd), static_cast<uint8_t*>(data), std::move(accounted)));
}

MemfdArena::MemfdArena(DeviceId device, uint64_t size, UniqueFd fd, uint8_t* data,
                       std::shared_ptr<std::atomic<uint64_t>> accounted)
    : device_(device),
      size_(size),
      fd_(std::move(fd)),
      data_(data),
      accounted_(std::move(accounted)) {}

MemfdArena::~MemfdArena() {
  if (data_ != nullptr) munmap(data_, size_);
  accounted_->fetch_sub(size_);
}

absl::Status MemfdArena::CheckRange(uint64_t offset, size_t n) const {
  if (offset > size_ || n > size_ - offset) {
    return absl::OutOfRangeError(
        absl::StrCat("arena range [", offset, ", +", n, ") is outside its ", size_, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status MemfdArena::Write(uint64_t offset, const void* src, size_t n) {
  if (data_ == nullptr) return absl::FailedPreconditionError("arena is sealed");
  if (absl::Status s = CheckRange(offset, n); !s.ok()) return s;
  std::memcpy(data_ + offset, src, n);
  return absl::OkStatus();
}

absl::Status MemfdArena::Read(uint64_t offset, void* dst, size_t n) const {
  if (absl::Status s = CheckRange(offset, n); !s.ok()) return s;
  if (data_ != nullptr) {
    std::memcpy(dst, data_ + offset, n);
    return absl::OkStatus();
  }
  // The memfd's size is sealed and the range checked: it cannot end early.
  return PreadFull(fd_.get(), dst, n, offset, "a sealed arena");
}

absl::Status MemfdArena::Seal() {
  if (data_ == nullptr) return absl::OkStatus();
  // A writable shared mapping blocks F_SEAL_WRITE, so drop ours first. After
  // this nobody, daemon included, can change the shared weights.
  munmap(data_, size_);
  data_ = nullptr;
  if (fcntl(fd_.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    return Errno("sealing memfd against writes", errno);
  }
  return absl::OkStatus();
}

ArenaExport MemfdArena::Export() const {
  ArenaExport e;
  e.kind = ArenaExport::Kind::kHostMemfd;
  e.memfd = fd_.get();
  return e;
}

}  // namespace distorch
