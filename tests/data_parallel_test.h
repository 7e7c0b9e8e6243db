// A fixture for tests that train with several CPU ranks: skipped, saying why, where this build
// has no Gloo; a fresh folder with a tiny language-model config of 20 steps.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/errors.h"
#include "test_util.h"
#include "train/distributed.h"

namespace stoch::test {

class DataParallelTest : public ::testing::Test {
 protected:
  explicit DataParallelTest(std::string tag) : tag_(std::move(tag)) {}

  void SetUp() override {
    try {
      train::data_parallel_backend(c10::Device(c10::kCPU), "auto");
    } catch (const InputError& e) {
      GTEST_SKIP() << e.what();
    }
    dir_ = temp_dir(tag_);
    cfg_ = dir_ + "/tiny.yaml";
    write_text(cfg_, tiny_lm_config(20));
  }

  std::string tag_, dir_, cfg_;
};

}  // namespace stoch::test
