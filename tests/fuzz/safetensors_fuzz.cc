// Fuzz target: ParseSafetensorsHeader over a whole file image (the input).
//
// Properties: an error is one non-empty line starting with the file name. An
// accepted header is exactly what a reader may trust: data starts right
// after the declared header, every tensor's [begin, end) lies inside the
// data section and holds exactly dtype size * prod(shape) bytes, non-empty
// ranges never overlap, names are unique, and every key of the JSON header
// (checked by an independent parse) is a tensor or the metadata. A header
// beyond kSafetensorsHeaderLimits (size, nesting) is refused with exactly
// that limit's line, and only then (fuzz_util.h, CheckJsonLimitsContract).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/model/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace dms::fuzz {
namespace {

constexpr char kSource[] = "fuzz.safetensors";

void CheckAccepted(const SafetensorsHeader& h, const uint8_t* data, size_t size) {
  FUZZ_CHECK(size >= 8, "accepted a " + std::to_string(size) + "-byte file");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  FUZZ_CHECK(header_len <= size - 8 && h.data_start == 8 + header_len,
             "data_start " + std::to_string(h.data_start) + " for header length " + std::to_string(header_len));
  const uint64_t data_size = size - h.data_start;

  std::set<std::string> names;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const SafetensorsEntry& e : h.tensors) {
    const std::string what = "tensor \"" + Printable(e.name) + "\"";
    FUZZ_CHECK(e.name != "__metadata__", what);
    FUZZ_CHECK(names.insert(e.name).second, what + " listed twice");
    FUZZ_CHECK(e.begin <= e.end && e.end <= data_size,
               what + " [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ") of " +
                   std::to_string(data_size) + " data bytes");
    unsigned __int128 bytes = DTypeSize(e.dtype);
    for (int64_t d : e.shape) {
      FUZZ_CHECK(d >= 0, what + " has a negative dimension");
      bytes *= static_cast<uint64_t>(d);
      if (bytes > data_size) break;  // already wrong; avoids 128-bit overflow
    }
    FUZZ_CHECK(bytes == e.end - e.begin, what + " holds " + std::to_string(e.end - e.begin) +
                                             " bytes, not dtype size * prod(shape)");
    if (e.end > e.begin) ranges.emplace_back(e.begin, e.end);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    FUZZ_CHECK(ranges[i].first >= ranges[i - 1].second, "two accepted tensors overlap");
  }

  // Independently: the header is a JSON object whose keys are the tensors
  // plus an optional __metadata__ object.
  const nlohmann::json j = nlohmann::json::parse(
      std::string(reinterpret_cast<const char*>(data) + 8, header_len), nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object(), "accepted a header that is not a JSON object");
  size_t expected = j.size();
  if (j.contains("__metadata__")) {
    FUZZ_CHECK(j["__metadata__"].is_object(), "accepted a __metadata__ that is not an object");
    FUZZ_CHECK(h.metadata.size() == j["__metadata__"].size(), "metadata entries lost");
    --expected;
  } else {
    FUZZ_CHECK(h.metadata.empty(), "metadata without __metadata__");
  }
  FUZZ_CHECK(h.tensors.size() == expected,
             std::to_string(h.tensors.size()) + " tensors from " + std::to_string(expected) + " header keys");
  for (const SafetensorsEntry& e : h.tensors) {
    FUZZ_CHECK(j.contains(e.name), "tensor \"" + Printable(e.name) + "\" is not in the header");
  }
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  dms::StatusOr<dms::SafetensorsHeader> h = dms::ParseSafetensorsHeader(data, size, kSource);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0 && size >= 8; --i) header_len = (header_len << 8) | data[i];
  if (size >= 8 && header_len <= size - 8) {
    const std::string_view text(reinterpret_cast<const char*>(data) + 8, header_len);
    const std::string prefix = std::string(kSource) + ": header";
    if (CheckJsonLimitsContract(text, dms::kSafetensorsHeaderLimits, h.status(), prefix)) return 0;
  }
  if (h.ok()) {
    CheckAccepted(*h, data, size);
  } else {
    CheckError(h.status(), std::string(kSource) + ": ");
  }
  return 0;
}
