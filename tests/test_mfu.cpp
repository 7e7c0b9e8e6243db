// The mfu metric: model FLOPs per token by PaLM's count (6N + 12 L d T) times tokens/s, over
// the configured peak.
#include <gtest/gtest.h>

#include "test_util.h"

namespace stoch {
namespace {

TEST(Mfu, TrainLinesCarryModelFlopsOverThePeak) {
  const std::string dir = test::temp_dir("mfu");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(6));
  // 1 MFLOP/s of peak, so that mfu is tokens/s x FLOPs per token / 1e6.
  auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                           "/run --set run.peak_tflops=1e-6 --set log.console_every=3");
  ASSERT_EQ(r.code, 0) << r.output;
  // tiny_lm_config: vocab 8, one layer of width 16, context 16, biases, tied unembedding.
  // Parameters without the position embedding: token embedding 8 x 16; per layer two norms
  // (2 x 32), qkv 16 x 48 + 48, output 16 x 16 + 16, MLP 16 x 64 + 64 and 64 x 16 + 16; final
  // norm 32.
  const double n = 8 * 16 + (2 * 32 + 816 + 272 + 1088 + 1040) + 32;
  const double flops_per_token = 6 * n + 12 * 1 * 16 * 16;
  const auto rate = test::metric_by_step(dir + "/run", "train", "tokens_per_s");
  const auto mfu = test::metric_by_step(dir + "/run", "train", "mfu");
  ASSERT_EQ(mfu.size(), 6u);
  for (const auto& [step, value] : mfu)
    EXPECT_NEAR(value, rate.at(step) * flops_per_token / 1e6, 1e-9 * value) << step;
  EXPECT_NE(r.output.find("% eta"), std::string::npos) << r.output;  // "mfu X% eta" on the console

  // Without a peak there is no mfu.
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/plain");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(test::metric_by_step(dir + "/plain", "train", "mfu").empty());
  EXPECT_FALSE(test::metric_by_step(dir + "/plain", "train", "tokens_per_s").empty());
}

}  // namespace
}  // namespace stoch
