// safetensors reader: the pure header parser and SafetensorsFile::Open.
#include "engine/model/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "engine/model/counter_rng.h"
#include "common/half.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace dms {
namespace {

using testing::RawSafetensors;

StatusOr<SafetensorsHeader> ParseBytes(const std::string& bytes) {
  return ParseSafetensorsHeader(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                "f.safetensors");
}

std::string ErrorOf(const std::string& bytes) {
  auto h = ParseBytes(bytes);
  return h.ok() ? "(parsed fine)" : h.status().message();
}

TEST(SafetensorsParseTest, ParsesValidHeaderWithGapsAndEmptyTensors) {
  const std::string header = R"({"__metadata__":{"format":"pt","n":3},)"
                             R"("b":{"dtype":"F32","shape":[2,2],"data_offsets":[24,40]},)"
                             R"("a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F16","shape":[0,5],"data_offsets":[8,8]},)"
                             R"("s":{"dtype":"F32","shape":[],"data_offsets":[40,44]}})";
  auto h = ParseBytes(RawSafetensors(header, 44));
  ASSERT_TRUE(h.ok()) << h.status().message();
  EXPECT_EQ(h->data_start, 8 + header.size());
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->metadata.at("n"), "3");
  ASSERT_EQ(h->tensors.size(), 4u);
  // nlohmann orders object keys by name.
  EXPECT_EQ(h->tensors[0].name, "a");
  EXPECT_EQ(h->tensors[1].name, "b");
  EXPECT_EQ(h->tensors[1].dtype, DType::kF32);
  EXPECT_EQ(h->tensors[1].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(h->tensors[1].begin, 24u);
  EXPECT_EQ(h->tensors[1].end, 40u);
  EXPECT_EQ(h->tensors[2].shape, (std::vector<int64_t>{0, 5}));
  EXPECT_TRUE(h->tensors[3].shape.empty());  // a scalar: one element
}

TEST(SafetensorsParseTest, FileShorterThan8Bytes) {
  EXPECT_EQ(
      ErrorOf(std::string(5, '\0')),
      "f.safetensors: file is 5 bytes, too short for a safetensors header (needs at least 8)");
  EXPECT_EQ(
      ErrorOf(""),
      "f.safetensors: file is 0 bytes, too short for a safetensors header (needs at least 8)");
}

TEST(SafetensorsParseTest, HeaderLengthPastEof) {
  EXPECT_EQ(ErrorOf(RawSafetensors("{}", 0, 3)),
            "f.safetensors: header length 3 runs past the end of the file (10 bytes)");
  EXPECT_EQ(
      ErrorOf(RawSafetensors("{}", 0, UINT64_MAX - 1)),
      "f.safetensors: header length 18446744073709551614 runs past the end of the file (10 bytes)");
}

TEST(SafetensorsParseTest, MalformedJson) {
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"a": [1, 2})", 0)),
            "f.safetensors: header is not valid JSON (syntax error at byte 11)");
  EXPECT_EQ(ErrorOf(RawSafetensors("", 0)),
            "f.safetensors: header is not valid JSON (syntax error at byte 0)");
}

TEST(SafetensorsParseTest, HeaderNotAnObject) {
  EXPECT_EQ(ErrorOf(RawSafetensors("\"tensors\"", 0)),
            "f.safetensors: header is not a JSON object (found string \"tensors\")");
}

TEST(SafetensorsParseTest, BadEntries) {
  EXPECT_EQ(
      ErrorOf(RawSafetensors(R"({"w": 3})", 0)),
      "f.safetensors: w: expected an object with dtype, shape and data_offsets, found number 3");
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"w": {"shape": [1], "data_offsets": [0, 2]}})", 2)),
            "f.safetensors: w: missing 'dtype'");
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"w": {"dtype": "F16", "data_offsets": [0, 2]}})", 2)),
            "f.safetensors: w: missing 'shape'");
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"w": {"dtype": "F16", "shape": [1]}})", 2)),
            "f.safetensors: w: missing 'data_offsets'");
  EXPECT_EQ(ErrorOf(RawSafetensors(
                R"({"w": {"dtype": "F16", "shape": [-1], "data_offsets": [0, 2]}})", 2)),
            "f.safetensors: w: shape: expected a list of non-negative integers, found [-1]");
  EXPECT_EQ(
      ErrorOf(RawSafetensors(R"({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0]}})", 2)),
      "f.safetensors: w: data_offsets: expected [begin, end] of non-negative integers, found [0]");
  EXPECT_EQ(ErrorOf(RawSafetensors(
                R"({"w": {"dtype": "F16", "shape": [1], "data_offsets": [4, 2]}})", 4)),
            "f.safetensors: w: data_offsets [4, 2] end before they begin");
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"__metadata__": [1]})", 0)),
            "f.safetensors: __metadata__: expected an object, found a list");
}

TEST(SafetensorsParseTest, UnknownDtypeIsNamed) {
  for (const char* dt : {"I64", "F64", "F8_E4M3", "bf16"}) {
    std::string header =
        std::string(R"({"w":{"dtype":")") + dt + R"(","shape":[1],"data_offsets":[0,8]}})";
    EXPECT_EQ(ErrorOf(RawSafetensors(header, 8)),
              std::string("f.safetensors: w: unsupported dtype '") + dt +
                  "' (expected BF16, F16 or F32)");
  }
}

TEST(SafetensorsParseTest, ShapeOffsetMismatch) {
  EXPECT_EQ(
      ErrorOf(RawSafetensors(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", 12)),
      "f.safetensors: w: data_offsets [0, 12] hold 12 bytes, but shape [2, 3] of F32 needs 24");
  // Overflowing shapes are rejected, not wrapped around.
  EXPECT_EQ(
      ErrorOf(RawSafetensors(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
      "f.safetensors: w: shape [4294967296, 4294967296] is too large");
}

TEST(SafetensorsParseTest, OffsetsOutOfRange) {
  EXPECT_EQ(
      ErrorOf(RawSafetensors(R"({"w":{"dtype":"F16","shape":[4],"data_offsets":[8,16]}})", 12)),
      "f.safetensors: w: data_offsets [8, 16] run past the end of the data section (12 bytes)");
}

TEST(SafetensorsParseTest, OverlappingTensors) {
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"x":{"dtype":"F16","shape":[4],"data_offsets":[8,16]},)"
                                   R"("y":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}})",
                                   16)),
            "f.safetensors: tensors y [0, 12] and x [8, 16] overlap");
  // The same range twice is an overlap too.
  EXPECT_EQ(ErrorOf(RawSafetensors(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                                   R"("y":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})",
                                   4)),
            "f.safetensors: tensors x [0, 4] and y [0, 4] overlap");
}

// Random corruptions of a valid image never crash the parser; each either
// parses or returns one line naming the source.
TEST(SafetensorsParseTest, SurvivesRandomCorruption) {
  const std::string valid = RawSafetensors(
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("b":{"dtype":"F32","shape":[3],"data_offsets":[12,24]}})",
      24);
  ASSERT_TRUE(ParseBytes(valid).ok());
  int failures = 0;
  for (uint64_t trial = 0; trial < 4000; ++trial) {
    std::string bytes = valid;
    const uint64_t r = rng::Bits(77, trial);
    switch (r % 3) {
      case 0:  // flip a few bytes
        for (int k = 0; k < 1 + static_cast<int>(r >> 60); ++k) {
          bytes[rng::Bits(78, trial * 16 + k) % bytes.size()] =
              static_cast<char>(rng::Bits(79, trial * 16 + k));
        }
        break;
      case 1:  // truncate
        bytes.resize(rng::Bits(80, trial) % bytes.size());
        break;
      default:  // corrupt the length prefix
        bytes[rng::Bits(81, trial) % 8] = static_cast<char>(rng::Bits(82, trial));
        break;
    }
    auto h = ParseBytes(bytes);
    if (!h.ok()) {
      ++failures;
      EXPECT_EQ(h.status().message().rfind("f.safetensors: ", 0), 0u) << h.status().message();
      EXPECT_EQ(h.status().message().find('\n'), std::string::npos);
    }
  }
  EXPECT_GT(failures, 1000);
}

TEST(SafetensorsFileTest, OpenMapsTensorData) {
  testing::TempDir tmp;
  std::string bytes = RawSafetensors(
      R"({"__metadata__":{"format":"pt"},"v":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
      R"("f":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
      0);
  const uint16_t v[2] = {FloatToBf16(1.5f), FloatToBf16(-2.0f)};
  const float f = 3.25f;
  bytes.append(reinterpret_cast<const char*>(v), 4);
  bytes.append(reinterpret_cast<const char*>(&f), 4);
  testing::WriteFile(tmp.File("x.safetensors"), bytes);
  auto file = SafetensorsFile::Open(tmp.File("x.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().message();
  EXPECT_EQ((*file)->path(), tmp.File("x.safetensors"));
  EXPECT_EQ((*file)->size(), bytes.size());
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  const TensorView* tv = (*file)->Find("v");
  ASSERT_NE(tv, nullptr);
  EXPECT_EQ(tv->file, tmp.File("x.safetensors"));
  EXPECT_EQ(tv->numel(), 2);
  EXPECT_EQ(tv->ShapeString(), "[2]");
  uint16_t got[2];
  std::memcpy(got, tv->data, 4);
  EXPECT_EQ(Bf16ToFloat(got[0]), 1.5f);
  EXPECT_EQ(Bf16ToFloat(got[1]), -2.0f);
  const TensorView* tf = (*file)->Find("f");
  ASSERT_NE(tf, nullptr);
  float gf;
  std::memcpy(&gf, tf->data, 4);
  EXPECT_EQ(gf, 3.25f);
  EXPECT_EQ((*file)->Find("nope"), nullptr);
}

TEST(SafetensorsFileTest, OpenMissingFile) {
  testing::TempDir tmp;
  auto file = SafetensorsFile::Open(tmp.File("none.safetensors"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().message(), tmp.File("none.safetensors") + ": no such file");
}

TEST(SafetensorsFileTest, DTypeNamesAndSizes) {
  EXPECT_STREQ(DTypeName(DType::kBF16), "BF16");
  EXPECT_STREQ(DTypeName(DType::kF16), "F16");
  EXPECT_STREQ(DTypeName(DType::kF32), "F32");
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
}

}  // namespace
}  // namespace dms
