// Errors built with absl::ErrnoToStatus carry strerror once: it appends it.
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "daemon/fdpass/scm_rights.h"
#include "daemon/load/splice_pipe.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

TEST_CASE("scm_rights errors name the errno once", "[errno]") {
  testing::TempDir dir;
  const std::string path = dir.File("no-such.sock");
  absl::StatusOr<UniqueFd> fd = ConnectUnix(path);
  CHECK(fd.status().code() == absl::StatusCode::kNotFound);
  CHECK(fd.status().message() == "connect " + path + ": No such file or directory");
}

TEST_CASE("splice_pipe errors name the errno once", "[errno][splice]") {
  testing::TempDir dir;
  const std::string path = dir.File("data");
  testing::WriteFile(path, testing::PatternBytes(4096, 1));
  UniqueFd file = testing::OpenRead(path);
  absl::StatusOr<std::unique_ptr<SplicePipe>> pipe = SplicePipe::Open();
  REQUIRE(pipe.ok());
  absl::Status s = (*pipe)->Copy(file.get(), 0, /*memfd=*/-1, 0, 4096, "tensor 'w'");
  CHECK(s.message() == "copying tensor 'w' into its arena: Bad file descriptor");
}

}  // namespace
}  // namespace distorch
