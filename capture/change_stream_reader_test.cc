#include "change_stream_reader.h"

#include <gtest/gtest.h>

namespace m2m::capture {
namespace {

TEST(ChangeStreamPipelineTest, NoStageBeforeMongo70) {
  EXPECT_TRUE(ChangeStreamPipeline(13).empty());  // 5.0
  EXPECT_TRUE(ChangeStreamPipeline(17).empty());  // 6.0 (6.0.9+ has the stage, but cannot be told apart)
  EXPECT_TRUE(ChangeStreamPipeline(0).empty());   // no hello reply
}

TEST(ChangeStreamPipelineTest, SplitLargeEventIsTheLastStageFrom70) {
  for (int32_t wire : {21, 25}) {  // 7.0, 8.0
    EXPECT_EQ(ChangeStreamPipeline(wire).ToRelaxedJson(), R"({ "0" : { "$changeStreamSplitLargeEvent" : {  } } })")
        << "wire version " << wire;
  }
}

}  // namespace
}  // namespace m2m::capture
