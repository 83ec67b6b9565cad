// PreadFull: the one pread loop, and its message for a file that ends early.
#include "daemon/fdpass/pread_full.h"

#include <catch2/catch.hpp>
#include <string>

#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::TempDir;

TEST_CASE("PreadFull reads an exact range", "[pread]") {
  TempDir dir;
  const std::string path = dir.File("data");
  const std::string data = testing::PatternBytes(300000, 3);
  testing::WriteFile(path, data);
  UniqueFd fd = testing::OpenRead(path);
  std::string got(200000, '\0');
  REQUIRE(PreadFull(fd.get(), got.data(), got.size(), 12345, "tensor 'w'").ok());
  CHECK(got == data.substr(12345, 200000));
}

TEST_CASE("PreadFull says where a short file ended", "[pread]") {
  TempDir dir;
  const std::string path = dir.File("short");
  testing::WriteFile(path, testing::PatternBytes(1000, 4));
  UniqueFd fd = testing::OpenRead(path);
  std::string got(600, '\0');

  absl::Status s = PreadFull(fd.get(), got.data(), got.size(), 700, "tensor 'w'");
  CHECK(s.code() == absl::StatusCode::kDataLoss);
  CHECK(s.message() ==
        "model file ended at offset 1000 inside tensor 'w' (was it truncated while loading?)");

  SECTION("naming the bytes at the offset where it stopped") {
    absl::Status named = PreadFull(fd.get(), got.data(), got.size(), 700, [](uint64_t at) {
      return at < 900 ? std::string("tensor 'a'") : std::string("tensor 'b'");
    });
    CHECK(named.message() ==
          "model file ended at offset 1000 inside tensor 'b' (was it truncated while loading?)");
  }
  SECTION("past the end") {
    CHECK(PreadFull(fd.get(), got.data(), 1, 5000, "the model header").message() ==
          "model file ended at offset 5000 inside the model header (was it truncated while "
          "loading?)");
  }
}

TEST_CASE("PreadFull names a failed read once, with its errno", "[pread]") {
  char byte;
  absl::Status s = PreadFull(-1, &byte, 1, 42, "tensor 'w'");
  CHECK(s.message() == "reading tensor 'w' at offset 42: Bad file descriptor");
}

}  // namespace
}  // namespace distorch
