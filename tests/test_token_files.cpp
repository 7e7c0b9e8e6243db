#include <gtest/gtest.h>

#include "core/errors.h"
#include "data/token_files.h"
#include "test_util.h"

namespace stoch {
namespace {

TEST(TokenFiles, PrepareRoundTripsBytes) {
  const std::string dir = test::temp_dir("tok");
  std::string a = "hello, world\n", b;
  for (int i = 0; i < 256; ++i) b.push_back(static_cast<char>(i));  // every byte value
  test::write_text(dir + "/a.txt", a);
  test::write_text(dir + "/b.bin", b);
  const auto r = data::prepare_token_files({{dir + "/a.txt", dir + "/b.bin"}, dir + "/out", 0.25});
  const auto train = data::read_token_split(dir + "/out", data::Split::kTrain);
  const auto val = data::read_token_split(dir + "/out", data::Split::kVal);
  EXPECT_EQ(r.train_tokens + r.val_tokens, static_cast<int64_t>(a.size() + b.size()));
  // Each file's tail is held out: train = heads of a and b; val = tails of a and b.
  std::string joined_train, joined_val;
  const size_t va = a.size() / 4, vb = b.size() / 4;
  std::string expect_train = a.substr(0, a.size() - va) + b.substr(0, b.size() - vb);
  std::string expect_val = a.substr(a.size() - va) + b.substr(b.size() - vb);
  for (int32_t t : train) joined_train.push_back(static_cast<char>(t));
  for (int32_t t : val) joined_val.push_back(static_cast<char>(t));
  EXPECT_EQ(joined_train, expect_train);
  EXPECT_EQ(joined_val, expect_val);
  EXPECT_NE(test::read_text(dir + "/out/meta.json").find("\"tokenizer\": \"byte\""),
            std::string::npos);

  auto src = data::open_token_dir(dir + "/out", "auto", 1, 2);
  EXPECT_EQ(src->vocab_size(), 256);
  std::vector<int32_t> w(5), w2(5);
  src->window(data::Split::kTrain, 7, 5, w.data());
  src->window(data::Split::kTrain, 7, 5, w2.data());
  EXPECT_EQ(w, w2);  // windows are pure functions of their index
  // A window is a contiguous slice of the train tokens.
  EXPECT_NE(std::search(train.begin(), train.end(), w.begin(), w.end()), train.end());
}

TEST(TokenFiles, BadInputsAreInputErrors) {
  const std::string dir = test::temp_dir("tok");
  EXPECT_THROW(data::prepare_token_files({{dir + "/missing.txt"}, dir + "/out", 0.1}), InputError);
  test::write_text(dir + "/empty.txt", "");
  EXPECT_THROW(data::prepare_token_files({{dir + "/empty.txt"}, dir + "/out", 0.1}), InputError);
  EXPECT_FALSE(test::fs::exists(dir + "/out"));
  EXPECT_THROW(data::open_token_dir(dir + "/nowhere", "auto", 0, 0), InputError);
  // A token file whose length disagrees with meta.json.
  test::write_text(dir + "/t.txt", std::string(100, 'x'));
  data::prepare_token_files({{dir + "/t.txt"}, dir + "/ok", 0.1});
  // A second prepare into a folder with files refuses instead of mixing two corpora.
  EXPECT_THROW(data::prepare_token_files({{dir + "/t.txt"}, dir + "/ok", 0.1}), InputError);
  test::fs::resize_file(dir + "/ok/train.bin", 10);
  EXPECT_THROW(data::open_token_dir(dir + "/ok", "auto", 0, 0), InputError);
}

// A train split shorter than one window is refused before the run folder is written.
TEST(TokenFiles, TrainSplitShorterThanAWindowIsRefusedBeforeTheRunStarts) {
  const std::string dir = test::temp_dir("tok");
  test::write_text(dir + "/t.txt", std::string(100, 'x'));
  data::prepare_token_files({{dir + "/t.txt"}, dir + "/tok", 0.9});  // train 10, val 90 tokens
  test::write_text(dir + "/c.yaml",
                   "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + dir +
                       "/tok}\nmodel: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
                       "train: {steps: 3, batch_size: 2, eval_batches: 1}\n");
  test::expect_train_refused(dir,
                             "data: the train split has 10 tokens, fewer than one window of 17");
}

// "DIR/" names DIR: the staging folder goes beside it, not inside, whether DIR is new or an
// empty folder already there.
TEST(TokenFiles, OutWithATrailingSlashIsTheFolder) {
  const std::string dir = test::temp_dir("tok");
  test::write_text(dir + "/t.txt", std::string(100, 'x'));
  data::prepare_token_files({{dir + "/t.txt"}, dir + "/new/", 0.1});
  EXPECT_TRUE(test::fs::is_regular_file(dir + "/new/meta.json"));
  test::fs::create_directories(dir + "/empty");
  data::prepare_token_files({{dir + "/t.txt"}, dir + "/empty//", 0.1});
  EXPECT_TRUE(test::fs::is_regular_file(dir + "/empty/meta.json"));
  for (const auto& e : test::fs::directory_iterator(dir))  // no staging folder left
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// A file name that is not UTF-8 is a name the file system allows: the folder is prepared, its
// meta.json valid JSON (it was a JSON type error, exit 1, reported as if the disk were full).
TEST(TokenFiles, AnInputNameThatIsNotUtf8IsPrepared) {
  const std::string dir = test::temp_dir("tok");
  const std::string input = dir + "/in\xff.txt";
  test::write_text(input, std::string(100, 'x'));
  const auto r = test::run_stoch("data prepare --input '" + input + "' --out " + dir + "/tok");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto meta = nlohmann::json::parse(test::read_text(dir + "/tok/meta.json"));
  EXPECT_EQ(meta["sources"][0], dir + "/in\xef\xbf\xbd.txt");
}

TEST(TokenFiles, CliPrepareThenTrainOnTokens) {
  const std::string dir = test::temp_dir("tokcli");
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the quick brown fox jumps over the lazy dog\n";
  test::write_text(dir + "/in.txt", text);
  auto r = test::run_stoch("data prepare --input " + dir + "/in.txt --out " + dir +
                           "/tok --val-fraction 0.1");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("data prepare --input " + dir + "/nope.txt --out " + dir + "/tok2");
  EXPECT_EQ(r.code, 2);
  test::write_text(dir + "/c.yaml",
                   "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + dir +
                       "/tok}\nmodel: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
                       "train: {steps: 30, batch_size: 8, eval_every: 0, eval_batches: 2}\n"
                       "optim: {lr: 0.01}\nschedule: {warmup_steps: 5}\n");
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(test::read_text(dir + "/run/metrics.jsonl").find("val/bpb"), std::string::npos);
  r = test::run_stoch("sample " + dir + "/run --prompt \"the \" --max-tokens 20 --seed 1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("the "), std::string::npos);
  r = test::run_stoch("eval " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("val/loss="), std::string::npos);
}

}  // namespace
}  // namespace stoch
