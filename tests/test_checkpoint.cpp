#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/crc32c.h"
#include "core/errors.h"
#include "core/torch/checkpoint.h"
#include "core/torch/safetensors.h"
#include "core/torch/state_tensors.h"
#include "test_util.h"
#include "train/rank_state.h"

namespace stoch {
namespace {

TEST(Crc32c, CheckValueAndChaining) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Safetensors, RoundTripsEveryDtypeWeUse) {
  const std::string dir = test::temp_dir("st");
  TensorList t = {{"f", torch::randn({3, 4})},
                  {"d", torch::randn({2}, torch::kDouble)},
                  {"b", torch::randn({5}).to(torch::kBFloat16)},
                  {"i", torch::arange(7, torch::kLong)},
                  {"u", torch::randint(0, 255, {9}, torch::kByte)},
                  {"scalar", torch::tensor(3.5f)}};
  write_safetensors(dir + "/x.safetensors", t, {{"k", "v"}});
  const auto back = read_safetensors(dir + "/x.safetensors");
  ASSERT_EQ(back.size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(back[i].first, t[i].first);
    EXPECT_TRUE(torch::equal(back[i].second, t[i].second)) << t[i].first;
  }
  // Header length is little-endian and the header is padded to 8 bytes.
  const std::string bytes = test::read_text(dir + "/x.safetensors");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
}

TEST(Safetensors, TruncatedFileIsAnInputError) {
  const std::string dir = test::temp_dir("st");
  write_safetensors(dir + "/x.safetensors", {{"a", torch::randn({100})}});
  test::fs::resize_file(dir + "/x.safetensors", 200);
  EXPECT_THROW(read_safetensors(dir + "/x.safetensors"), InputError);
}

Checkpoint make(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.tensors["model"] = {{"w", torch::full({4}, static_cast<float>(step))}};
  c.tensors["rng"] = {{"torch_cpu", torch::zeros({2}, torch::kByte)}};
  c.state = {{"step", step}};
  return c;
}

TEST(StateTensors, RandomStreamsAndBytesRoundTripAndBadShapesAreInputErrors) {
  Rng rng(42);
  rng.next();
  Rng back = rng_from_tensor(rng_to_tensor(rng), "t");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back.next(), rng.next());
  EXPECT_THROW(rng_from_tensor(torch::zeros({3}, torch::kLong), "t"), InputError);
  EXPECT_THROW(rng_from_tensor(torch::zeros({4}, torch::kFloat), "t"), InputError);
  const std::string bytes("a\0b\xff", 4);
  EXPECT_EQ(tensor_to_bytes(bytes_to_tensor(bytes)), bytes);
  const TensorList list = {{"x", torch::ones({2})}};
  EXPECT_EQ(tensor_named(list, "x", "t").numel(), 2);
  try {
    tensor_named(list, "y", "run/step-1: agent");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "run/step-1: agent: no tensor y in the checkpoint");
  }
}

TEST(CheckpointStore, KeepsNewestAndLoadsThem) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  for (int64_t s : {10, 20, 30, 40}) store.save(make(s), 2);
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{30, 40}));
  auto c = store.load_latest();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->step, 40);
  EXPECT_EQ(c->tensors["model"][0].second[0].item<float>(), 40.0f);
  // Nothing temporary is left behind.
  for (const auto& e : test::fs::directory_iterator(dir + "/checkpoints"))
    EXPECT_EQ(e.path().filename().string().rfind("step-", 0), 0u) << e.path();
}

// Past 10^8 steps the folder name has more than eight digits; it is still a checkpoint.
TEST(CheckpointStore, StepsPastEightDigitsAreListed) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  for (int64_t s : {99999999, 100000000, 1234567890}) store.save(make(s), 0);
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{99999999, 100000000, 1234567890}));
  EXPECT_EQ(store.load_latest()->step, 1234567890);
  test::fs::create_directories(dir + "/checkpoints/step-0000001x");  // not a step
  EXPECT_EQ(store.steps().size(), 3u);
}

TEST(CheckpointStore, KeepEverySparesMultiplesFromKeepLast) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  for (int64_t s : {10, 20, 30, 40, 50, 60, 70}) store.save(make(s), 2, 30);
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{30, 60, 70}));
}

TEST(CheckpointStore, TrainingKeepsEveryNthCheckpoint) {
  const std::string dir = test::temp_dir("ck");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(20));
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                                 "/run --set train.keep_last=1 --set train.keep_every=10");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(CheckpointStore(dir + "/run").steps(), (std::vector<int64_t>{10, 20}));
}

// Flips a byte of the tensor data in checkpoint folder CKPT's weights.
void damage_weights(const std::string& ckpt) {
  std::fstream f(ckpt + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-2, std::ios::end);
  f.put('\x7f');
}

// A tiny language-model run of 20 steps trained into DIR/NAME with ARGS; its folder.
std::string trained_run(const std::string& dir, const std::string& name, const std::string& args) {
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(20));
  const std::string run = dir + "/" + name;
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + run + args);
  EXPECT_EQ(r.code, 0) << r.output;
  return run;
}

TEST(CheckpointStore, DamagedNewestIsSkippedForThePreviousOne) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  store.save(make(1), 0);
  store.save(make(2), 0);
  damage_weights(store.folder(2));
  EXPECT_THROW(store.load(2), InputError);
  auto c = store.load_latest();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->step, 1);
}

// Every checkpoint damaged: nothing to resume from, and starting from step 0 would remove them
// all at the first checkpoint written (it did, exit 0). Refused, every folder kept.
TEST(CheckpointStore, NoCheckpointThatVerifiesIsRefusedAndKept) {
  const std::string run = trained_run(test::temp_dir("ck"), "run", " --set train.ckpt_every=10");
  for (const int64_t step : {10, 20}) damage_weights(test::checkpoint_dir(run, step));
  const std::string before = test::read_text(run + "/metrics.jsonl");
  test::expect_refused("resume " + run + " --set train.steps=30",
                       run + "/checkpoints: no checkpoint verifies (the newest: " +
                           test::checkpoint_dir(run, 20) + "/model.safetensors: checksum mismatch");
  EXPECT_EQ(CheckpointStore(run).steps(), (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(test::read_text(run + "/metrics.jsonl"), before);
  test::expect_refused("eval " + run, "no checkpoint verifies");
  // With none written yet, a resume still starts from step 0.
  std::filesystem::remove_all(run + "/checkpoints");
  const auto r = test::run_stoch("resume " + run + " --set train.steps=5");
  EXPECT_EQ(r.code, 0) << r.output;
}

// A checkpoint that cannot be read (permissions, an I/O error) is not damaged: the resume
// stops naming it, and keeps it (it fell back to step 0, then removed the intact newer folders).
TEST(CheckpointStore, AnUnreadableCheckpointIsNamedNotSkipped) {
  const std::string run = trained_run(test::temp_dir("ck"), "run", " --set train.ckpt_every=10");
  const std::string weights = test::checkpoint_dir(run, 20) + "/model.safetensors";
  std::filesystem::permissions(weights, std::filesystem::perms::none);
  // Root reads any file: the resume runs without the capabilities that allow it.
  std::string prefix;
  if (::geteuid() == 0) {
    if (test::run_command("command -v setpriv").code != 0) GTEST_SKIP() << "no setpriv";
    prefix = "setpriv --bounding-set=-dac_override,-dac_read_search -- ";
  }
  const auto r =
      test::run_command(prefix + STOCH_BINARY + " resume " + run + " --set train.steps=30");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(weights + ": cannot read (Permission denied)"), std::string::npos)
      << r.output;
  std::filesystem::permissions(
      weights, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(CheckpointStore(run).steps(), (std::vector<int64_t>{10, 20}));
  EXPECT_NO_THROW(CheckpointStore(run).load(20));
}

// A run resumed below newer folders (damaged ones its resume skipped, or those a rollback went
// back before) keeps the checkpoint it writes: the newer folders go, and keep_last counts the
// new one among the older.
TEST(CheckpointStore, FoldersPastTheStepJustWrittenGoAndKeepLastKeepsIt) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  for (int64_t s : {50, 100, 300}) store.save(make(s), 0);
  store.save(make(150), 1);
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{150}));
  for (int64_t s : {200, 250}) store.save(make(s), 0);
  store.save(make(160), 2);
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{150, 160}));
  store.save(make(160), 2);  // the same step again, as a resume re-saving its start does
  EXPECT_EQ(store.steps(), (std::vector<int64_t>{150, 160}));
  EXPECT_EQ(store.load_latest()->step, 160);
}

// The run the audit found: keep_last 1, the newest checkpoint damaged, a resume killed part way.
// With keep_last 1 there is nothing older: refused now, the folder kept (it started from step
// 0). With an older one, the resumed run's first checkpoint removes the damaged newer folder,
// and keep_last counts what it writes (it deleted each one, so a kill lost all progress).
TEST(CheckpointStore, AResumeBelowADamagedCheckpointKeepsWhatItWrites) {
  const std::string dir = test::temp_dir("ck");
  const std::string alone =
      trained_run(dir, "alone", " --set train.ckpt_every=5 --set train.keep_last=1");
  damage_weights(test::checkpoint_dir(alone, 20));
  test::expect_refused("resume " + alone + " --set train.steps=20", "no checkpoint verifies");
  EXPECT_EQ(CheckpointStore(alone).steps(), (std::vector<int64_t>{20}));

  const std::string run =
      trained_run(dir, "run", " --set train.ckpt_every=4 --set train.keep_last=2");
  damage_weights(test::checkpoint_dir(run, 20));
  // Stopped at step 18 of its second course (train.steps 18, as a kill there would).
  auto r = test::run_stoch("resume " + run + " --set train.steps=18");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("removing " + test::checkpoint_dir(run, 20)), std::string::npos)
      << r.output;
  EXPECT_EQ(CheckpointStore(run).steps(), (std::vector<int64_t>{16, 18}));
  r = test::run_stoch("resume " + run + " --set train.steps=20");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + test::checkpoint_dir(run, 18)), std::string::npos)
      << r.output;
}

// A manifest (checksums and all) that leaves out the weights or the random state is damaged:
// skipped for the previous checkpoint, and named when asked for (it was a bare map::at, exit 1).
TEST(CheckpointStore, AManifestWithoutTheWeightsOrRandomStateIsDamaged) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  store.save(make(1), 0);
  for (const std::string file : {"model.safetensors", "rng.safetensors"}) {
    store.save(make(2), 0);
    const std::string mpath = store.folder(2) + "/manifest.json";
    auto manifest = nlohmann::json::parse(test::read_text(mpath));
    ASSERT_EQ(manifest["files"].erase(file), 1u);
    test::write_text(mpath, manifest.dump(2));
    try {
      store.load(2);
      ADD_FAILURE() << "a manifest without " << file << " loaded";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()), mpath + ": lists no " + file);
    }
    EXPECT_EQ(store.load_latest()->step, 1);
    EXPECT_EQ(store.load_latest_state()->step, 1);
  }
}

// The ranks' check before an elastic resume reads the checkpoint the resume will use: a newest
// state.json that fails its checksum is skipped, not believed (nor a type error, exit 1).
TEST(CheckpointStore, TheWorldSizeCheckSkipsADamagedNewestState) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  for (int64_t s : {1, 2}) {
    Checkpoint c = make(s);
    c.state["world_size"] = 1;
    c.state["micro_batches_per_step"] = 2;
    store.save(c, 0);
  }
  const std::string spath = store.folder(2) + "/state.json";
  std::string text = test::read_text(spath);
  text.replace(text.find("\"micro_batches_per_step\": 2"), 28, "\"micro_batches_per_step\": 3");
  test::write_text(spath, text);
  EXPECT_NO_THROW(train::check_resume_world_size(dir, 2, 1));
  text.replace(text.find("\"micro_batches_per_step\": 3"), 28, "\"micro_batches_per_step\": true");
  test::write_text(spath, text);
  EXPECT_NO_THROW(train::check_resume_world_size(dir, 2, 1));
  EXPECT_THROW(train::check_resume_world_size(dir, 3, 1), InputError);  // 2 over 3 ranks
}

TEST(CheckpointStore, FolderWithoutManifestIsIncomplete) {
  const std::string dir = test::temp_dir("ck");
  CheckpointStore store(dir);
  store.save(make(5), 0);
  test::fs::create_directories(store.folder(6));
  EXPECT_EQ(store.load_latest()->step, 5);
}

}  // namespace
}  // namespace stoch
