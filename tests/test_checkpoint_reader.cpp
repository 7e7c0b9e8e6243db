// A trained run's checkpoint tensor files, read by PyPI's `safetensors` (the reader Hugging Face
// tools use) and by stoch's own reader: the same names, shapes, dtypes and values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/torch/safetensors.h"
#include "test_util.h"

namespace stoch {
namespace {

// Prints, per tensor of each file given, its shape, numpy dtype and three float64 digests: the
// sum, the sum of squares and the sum weighted by flat position (which sees a permutation).
const char* kDigestScript = R"(import json, os, sys
import numpy as np
from safetensors import safe_open

out = {}
for path in sys.argv[2:]:
    with safe_open(path, framework="np") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            d = t.astype(np.float64).ravel()
            out[os.path.basename(path) + ":" + name] = {
                "shape": list(t.shape), "dtype": str(t.dtype), "sum": float(d.sum()),
                "sumsq": float((d * d).sum()), "wsum": float((d * np.arange(d.size)).sum())}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
)";

std::string numpy_dtype(at::ScalarType t) {
  static const std::map<at::ScalarType, std::string> names = {
      {at::kFloat, "float32"}, {at::kDouble, "float64"}, {at::kHalf, "float16"},
      {at::kLong, "int64"},    {at::kInt, "int32"},      {at::kShort, "int16"},
      {at::kChar, "int8"},     {at::kByte, "uint8"},     {at::kBool, "bool"}};
  const auto it = names.find(t);
  return it == names.end() ? std::string("unmapped ") + c10::toString(t) : it->second;
}

// Equal up to float64 rounding of sums taken in another order; SCALE is the sum of the terms'
// magnitudes.
void expect_digest(double python, double stoch, double scale, const std::string& what) {
  EXPECT_NEAR(python, stoch, 1e-10 * std::max(1.0, scale)) << what;
}

TEST(CheckpointReader, PythonSafetensorsReadsWhatStochReads) {
  STOCH_REQUIRE(test::python_missing("safetensors, numpy"));
  const std::string dir = test::temp_dir("ckptread");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(5));
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string ckpt = test::checkpoint_dir(dir + "/run", 5);
  std::vector<std::string> files;
  for (const auto& e : test::fs::directory_iterator(ckpt))
    if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_TRUE(std::count(files.begin(), files.end(), ckpt + "/model.safetensors")) << ckpt;
  ASSERT_TRUE(std::any_of(files.begin(), files.end(), [](const std::string& f) {
    return test::fs::path(f).filename().string().rfind("optimizer", 0) == 0;
  })) << ckpt;

  test::write_text(dir + "/digest.py", kDigestScript);
  std::string args = "'" + dir + "/digest.json'";
  for (const auto& f : files) args += " '" + f + "'";
  const auto py = test::run_python(dir + "/digest.py", args);
  ASSERT_EQ(py.code, 0) << py.output;
  const auto digests = nlohmann::json::parse(test::read_text(dir + "/digest.json"));

  size_t tensors = 0;
  for (const auto& f : files) {
    const std::string file = test::fs::path(f).filename().string();
    for (const auto& [name, t] : read_safetensors(f)) {
      ++tensors;
      const std::string key = file + ":" + name;
      ASSERT_TRUE(digests.contains(key)) << key << " not read by safetensors";
      const auto& d = digests[key];
      EXPECT_EQ(d["shape"].get<std::vector<int64_t>>(), t.sizes().vec()) << key;
      EXPECT_EQ(d["dtype"].get<std::string>(), numpy_dtype(t.scalar_type())) << key;
      const torch::Tensor v = t.to(torch::kDouble).flatten();
      const torch::Tensor pos = torch::arange(v.numel(), v.options());
      const double abs_sum = v.abs().sum().item<double>();
      expect_digest(d["sum"], v.sum().item<double>(), abs_sum, key + " sum");
      expect_digest(d["sumsq"], (v * v).sum().item<double>(), (v * v).sum().item<double>(),
                    key + " sum of squares");
      expect_digest(d["wsum"], (v * pos).sum().item<double>(), (v.abs() * pos).sum().item<double>(),
                    key + " position-weighted sum");
    }
  }
  EXPECT_EQ(digests.size(), tensors) << "safetensors reads tensors stoch does not";
  EXPECT_GT(tensors, 4u);
  test::fs::remove_all(dir);
}

}  // namespace
}  // namespace stoch
