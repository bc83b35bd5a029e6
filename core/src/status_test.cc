#include "m2m/status.h"

#include <gtest/gtest.h>

namespace m2m {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::Invalid("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  M2M_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

TEST(StatusTest, OkCarriesNothing) {
  Status st;
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kOk);
  EXPECT_EQ(st.message(), "");
  EXPECT_FALSE(st.retriable());
  EXPECT_EQ(st.ToString(), "OK");
}

TEST(StatusTest, ErrorKeepsCodeMessageAndOrigin) {
  Status st(StatusCode::kMysql, "deadlock", /*retriable=*/true, 1213);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.native_code(), 1213);
  EXPECT_TRUE(st.retriable());
  EXPECT_EQ(st.ToString(), "MySQL error: deadlock");
  Status copy = st.WithContext("applying batch 7");
  EXPECT_EQ(copy.message(), "applying batch 7: deadlock");
  EXPECT_EQ(copy.native_code(), 1213);
  EXPECT_TRUE(copy.retriable());
  EXPECT_EQ(st.message(), "deadlock");
}

TEST(StatusTest, ResultPropagatesThroughMacros) {
  auto ok = Quarter(12);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 3);
  auto bad = Quarter(6);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "odd: 3");
}

}  // namespace
}  // namespace m2m
