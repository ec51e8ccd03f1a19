// A main() for the fuzz targets without libFuzzer: feeds every file named on
// the command line (directories recursively, in sorted order) to
// LLVMFuzzerTestOneInput once. This is how the saved regression inputs and
// the seed corpora run as plain ctests in the normal g++ build; a violated
// property aborts, so the test fails and names the input it was running.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

std::vector<std::string> Inputs(const std::string& arg) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(arg)) {
      if (e.is_regular_file()) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
  } else if (fs::is_regular_file(arg, ec)) {
    files.push_back(arg);
  }
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    const std::vector<std::string> files = Inputs(argv[i]);
    if (files.empty()) {
      std::printf("(no inputs in %s)\n", argv[i]);  // e.g. a target without regressions yet
      continue;
    }
    for (const std::string& path : files) {
      std::ifstream in(path, std::ios::binary);
      std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!in.good() && !in.eof()) {
        std::fprintf(stderr, "%s: cannot read\n", path.c_str());
        return 1;
      }
      std::printf("input %s (%zu bytes)\n", path.c_str(), bytes.size());
      std::fflush(stdout);  // so a crash's output names the input
      LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
      ++total;
    }
  }
  if (total == 0) {
    std::fprintf(stderr, "no inputs found in the paths given\n");
    return 1;
  }
  std::printf("%zu inputs passed\n", total);
  return 0;
}
