// The loader's kernel copy path: file -> pipe -> memfd at any offsets, more
// than a pipe's worth at a time, and a clear DataLoss when the file ends early.
#include "daemon/load/splice_pipe.h"

#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/match.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::TempDir;

std::string MemfdBytes(int memfd, uint64_t offset, size_t n) {
  std::string out(n, '\0');
  REQUIRE(pread(memfd, out.data(), n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n));
  return out;
}

TEST_CASE("SplicePipe copies a file range into a memfd byte for byte", "[splice]") {
  TempDir dir;
  const std::string path = dir.File("data");
  const std::string data = testing::PatternBytes(3 << 20, 5);  // 3 MiB: several pipefuls
  testing::WriteFile(path, data);
  UniqueFd file = testing::OpenRead(path);
  UniqueFd memfd(memfd_create("splice_test", MFD_CLOEXEC));
  REQUIRE(ftruncate(memfd.get(), 4 << 20) == 0);

  absl::StatusOr<std::unique_ptr<SplicePipe>> pipe = SplicePipe::Open();
  REQUIRE(pipe.ok());
  // Unaligned source and destination offsets, and a second copy on the same pipe.
  REQUIRE((*pipe)->Copy(file.get(), 12345, memfd.get(), 777, 2'500'000, "tensor 'a'").ok());
  REQUIRE((*pipe)->Copy(file.get(), 0, memfd.get(), 3'000'000, 1000, "tensor 'b'").ok());
  CHECK(MemfdBytes(memfd.get(), 777, 2'500'000) == data.substr(12345, 2'500'000));
  CHECK(MemfdBytes(memfd.get(), 3'000'000, 1000) == data.substr(0, 1000));
  CHECK(MemfdBytes(memfd.get(), 0, 777) == std::string(777, '\0'));
}

TEST_CASE("SplicePipe reports a file that ends inside the range", "[splice]") {
  TempDir dir;
  const std::string path = dir.File("short");
  testing::WriteFile(path, testing::PatternBytes(100000, 6));
  UniqueFd file = testing::OpenRead(path);
  UniqueFd memfd(memfd_create("splice_test", MFD_CLOEXEC));
  REQUIRE(ftruncate(memfd.get(), 1 << 20) == 0);
  absl::StatusOr<std::unique_ptr<SplicePipe>> pipe = SplicePipe::Open();
  REQUIRE(pipe.ok());
  absl::Status s = (*pipe)->Copy(file.get(), 50000, memfd.get(), 0, 80000, "tensor 'w'");
  REQUIRE(absl::IsDataLoss(s));
  CHECK(s.message() ==
        "model file ended at offset 100000 inside tensor 'w' (was it truncated while loading?)");
}

}  // namespace
}  // namespace distorch
