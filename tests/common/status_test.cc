#include "common/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace dms {
namespace {

StatusOr<int> ParsePositive(int v) {
  if (v <= 0) return InvalidArgumentError("value must be positive, got " + std::to_string(v));
  return v;
}

StatusOr<int> Doubled(int v) {
  DMS_ASSIGN_OR_RETURN(int x, ParsePositive(v));
  return 2 * x;
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(OkStatus().ok());
  Status s = NotFoundError("model.safetensors: no such file");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: model.safetensors: no such file");
  EXPECT_EQ(s.WithContext("loading /m").message(), "loading /m: model.safetensors: no such file");
}

TEST(StatusTest, StatusOrPropagates) {
  EXPECT_EQ(*Doubled(4), 8);
  StatusOr<int> bad = Doubled(-1);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "value must be positive, got -1");
}

TEST(StatusTest, MoveOnlyValue) {
  StatusOr<std::unique_ptr<int>> p = std::make_unique<int>(3);
  ASSERT_TRUE(p.ok());
  std::unique_ptr<int> v = std::move(p).value();
  EXPECT_EQ(*v, 3);
}

}  // namespace
}  // namespace dms
