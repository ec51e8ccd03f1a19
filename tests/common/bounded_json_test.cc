// The bounded JSON reader (common/bounded_json.h) and the bounded file
// reads under it: nesting and size limits with their exact one-line errors,
// and files that are not regular files (a device, a FIFO) refused at once.
#include "common/bounded_json.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "common/mapped_file.h"
#include "tests/test_util.h"

namespace dms {
namespace {

namespace fs = std::filesystem;
using testing::DeeplyNestedJson;
using testing::TempDir;

TEST(BoundedJsonTest, NestingDepthCountsBracketsOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("1", 64), 0);
  EXPECT_EQ(JsonNestingDepth("[]", 64), 1);
  EXPECT_EQ(JsonNestingDepth(R"({"a": [1, {"b": []}], "c": {}})", 64), 4);
  // Brackets, escaped quotes and backslashes inside strings do not count.
  EXPECT_EQ(JsonNestingDepth(R"(["[[[{{{", "\"[[[", "\\", [2]])", 64), 2);
  EXPECT_EQ(JsonNestingDepth(R"("\\\"[[[")", 64), 0);
  // A quote ends the string after an even run of backslashes, not after an odd one.
  EXPECT_EQ(JsonNestingDepth(R"(["a\\\\", [1]])", 64), 2);
  EXPECT_EQ(JsonNestingDepth(R"(["a\\\"]", 1])", 64), 1);
  EXPECT_EQ(JsonNestingDepth(DeeplyNestedJson(64), 64), 64);
  // A NUL outside strings ends the text, as it ends nlohmann's parse.
  EXPECT_EQ(JsonNestingDepth(std::string("[1]\0[[[[", 8), 1), 1);
  // The scan stops just past the limit.
  EXPECT_EQ(JsonNestingDepth(DeeplyNestedJson(100000), 64), 65);
  // Unterminated strings and stray closers end the scan without reading past the text.
  EXPECT_EQ(JsonNestingDepth("[\"abc\\", 64), 1);
  EXPECT_EQ(JsonNestingDepth("]]][", 64), 0);
}

TEST(BoundedJsonTest, RefusesTextBeyondItsLimitsWithOneLine) {
  const JsonLimits limits{16, 3};
  EXPECT_TRUE(CheckJsonLimits("[[[1]]]", limits, "f.json", "config").ok());
  EXPECT_EQ(CheckJsonLimits("[[[[1]]]]", limits, "f.json", "config").message(),
            "f.json: config is nested deeper than 3 levels");
  EXPECT_EQ(CheckJsonLimits("\"0123456789abcdef\"", limits, "f.json", "config").message(),
            "f.json: config is larger than 16 bytes");
  EXPECT_EQ(ParseBoundedJson("{\"a\": ", limits, "f.json", "header").status().message(),
            "f.json: header is not valid JSON (syntax error at byte 6)");
  auto parsed = ParseBoundedJson(R"({"a": [[2]]})", limits, "f.json", "header");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)["a"][0][0], 2);
  // What follows a NUL is not parsed, so it is not measured either (fuzz finding).
  parsed = ParseBoundedJson(std::string("[1]\0[[[[[[", 10), limits, "f.json", "header");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, nlohmann::json::array({1}));
}

// 100,000 levels on a small stack: refused before nlohmann builds a tree that
// a recursive dump or copy would overflow the stack on.
TEST(BoundedJsonTest, DeepNestingIsRefusedOnASmallStack) {
  const std::string deep = "{\"a\": " + DeeplyNestedJson(100000) + "}";
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    auto parsed = ParseBoundedJson(deep, kConfigJsonLimits, "config.json", "config");
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().message(), "config.json: config is nested deeper than 64 levels");
  });
}

TEST(BoundedFileTest, ReadsRegularFilesUpToTheLimit) {
  TempDir tmp;
  testing::WriteFile(tmp.File("f"), "0123456789");
  EXPECT_EQ(*ReadFileToString(tmp.File("f"), 10), "0123456789");
  EXPECT_EQ(ReadFileToString(tmp.File("f"), 9).status().message(),
            tmp.File("f") + ": file is larger than 9 bytes");
  EXPECT_EQ(ReadFileToString(tmp.File("none")).status().message(),
            tmp.File("none") + ": no such file");
  // Files that report size 0 are read to their end.
  auto status = ReadFileToString("/proc/self/status");
  ASSERT_TRUE(status.ok()) << status.status().message();
  EXPECT_NE(status->find("Name:"), std::string::npos);
  EXPECT_EQ(ReadFileToString("/proc/self/status", 8).status().message(),
            "/proc/self/status: file is larger than 8 bytes");
  // A sparse 64 MiB file is refused from its size alone.
  testing::WriteFile(tmp.File("big"), "");
  fs::resize_file(tmp.File("big"), uint64_t{64} << 20);
  EXPECT_EQ(ReadFileToString(tmp.File("big")).status().message(),
            tmp.File("big") + ": file is larger than 16777216 bytes");
}

// /dev/zero would be read forever; a symlink to it is refused like the device.
TEST(BoundedFileTest, DevicesAndDirectoriesAreNotRegularFiles) {
  TempDir tmp;
  fs::create_symlink("/dev/zero", tmp.File("config.json"));
  EXPECT_EQ(ReadFileToString(tmp.File("config.json")).status().message(),
            tmp.File("config.json") + ": not a regular file");
  EXPECT_EQ(MappedFile::Open(tmp.File("config.json")).status().message(),
            tmp.File("config.json") + ": not a regular file");
  EXPECT_EQ(ReadFileToString(tmp.path()).status().message(), tmp.path() + ": not a regular file");
}

// A FIFO is refused at once: opening it must not wait for a writer. Should a
// read block, a helper opens the write end after 5 s, so the test fails on
// time instead of hanging.
TEST(BoundedFileTest, FifosAreRefusedWithoutWaiting) {
  TempDir tmp;
  const std::string fifo = tmp.File("tokenizer.json");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::atomic<bool> done{false};
  std::thread unblock([&] {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    while (!done) {
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);  // fails without a reader
      if (fd >= 0) ::close(fd);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  const std::string read = ReadFileToString(fifo).status().message();
  const std::string mapped = MappedFile::Open(fifo).status().message();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  done = true;
  unblock.join();
  EXPECT_EQ(read, fifo + ": not a regular file");
  EXPECT_EQ(mapped, fifo + ": not a regular file");
  EXPECT_LT(seconds, 2.0);
}

}  // namespace
}  // namespace dms
