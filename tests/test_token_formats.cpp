// Token folders in stoch's, nanoGPT's and llm.c's formats: writing, reading across shards,
// the sequential cursor, exact resume across shard boundaries, and bad files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "data/token_files.h"
#include "data/token_formats.h"
#include "data/tokenizer/tokenizer.h"
#include "test_util.h"

namespace stoch {
namespace {

std::string corpus(int lines) {
  std::string text;
  for (int i = 0; i < lines; ++i)
    text += "line " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog\n";
  return text;
}

data::PrepareReport prepare(const std::string& dir, const std::string& format, int64_t shard) {
  data::PrepareOptions o;
  o.inputs = {dir + "/in.txt"};
  o.out = dir + "/" + format;
  o.format = format;
  o.shard_tokens = shard;
  return data::prepare_token_files(o);
}

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no InputError";
}

void write_bytes(const std::string& path, const void* p, size_t n, size_t offset = 0) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
}

// A missing relative folder is named with the directory it was looked for from: eval, sample and
// export read a run's relative data.dir from wherever they are started.
TEST(TokenFormats, AMissingRelativeFolderNamesTheCurrentDirectory) {
  const auto message = [](const std::string& dir) {
    try {
      data::open_token_folder(dir, "auto");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::string relative = message("no-such-token-folder");
  EXPECT_NE(relative.find("no-such-token-folder: token folder not found from " +
                          test::fs::current_path().string() +
                          " (a relative data.dir is read from the current directory)"),
            std::string::npos)
      << relative;
  const std::string absolute = message("/no-such-token-folder");
  EXPECT_EQ(absolute,
            "/no-such-token-folder: token folder not found; prepare one with `stoch data prepare`");
}

TEST(TokenFormats, EveryFormatHoldsTheSameIds) {
  const std::string dir = test::temp_dir("fmt");
  test::write_text(dir + "/in.txt", corpus(40));
  prepare(dir, "stoch", 0);
  prepare(dir, "nanogpt", 0);
  const auto r = prepare(dir, "llmc", 100);
  const auto train = data::read_token_split(dir + "/stoch", data::Split::kTrain);
  const auto val = data::read_token_split(dir + "/stoch", data::Split::kVal);
  EXPECT_EQ(static_cast<int64_t>(train.size()), r.train_tokens);
  for (const char* f : {"nanogpt", "llmc"}) {
    EXPECT_EQ(data::read_token_split(dir + "/" + f, data::Split::kTrain), train) << f;
    EXPECT_EQ(data::read_token_split(dir + "/" + f, data::Split::kVal), val) << f;
  }
  // nanoGPT's files are the bare ids; llm.c's shards carry the 1024-byte header.
  EXPECT_EQ(test::fs::file_size(dir + "/nanogpt/train.bin"), train.size() * 2);
  EXPECT_EQ(test::fs::file_size(dir + "/llmc/train_000000.bin"), 1024u + 100 * 2);
  const size_t shards = (train.size() + 99) / 100;
  char last[64];
  std::snprintf(last, sizeof(last), "/llmc/train_%06zu.bin", shards - 1);
  EXPECT_TRUE(test::fs::exists(dir + last)) << last;
  std::snprintf(last, sizeof(last), "/llmc/train_%06zu.bin", shards);
  EXPECT_FALSE(test::fs::exists(dir + last)) << last;
  // A folder nanoGPT wrote itself has no meta.json: detected from its files, vocabulary from
  // the largest id.
  test::fs::remove(dir + "/nanogpt/meta.json");
  auto src = data::open_token_dir(dir + "/nanogpt", "auto", 0, 0);
  EXPECT_EQ(src->vocab_size(), *std::max_element(train.begin(), train.end()) + 1);
  EXPECT_NE(src->describe().find("nanogpt"), std::string::npos);
  EXPECT_EQ(src->val_bytes_per_token(), 0.0);  // unknown without meta.json: no bits per byte
  test::fs::remove(dir + "/llmc/meta.json");
  EXPECT_NE(data::open_token_dir(dir + "/llmc", "auto", 0, 0)->describe().find("llmc"),
            std::string::npos);
  EXPECT_NE(what_of([&] {
              data::open_token_dir(dir + "/llmc", "nanogpt", 0, 0);
            }).find("data.format: nanogpt"),
            std::string::npos);
}

TEST(TokenFormats, WindowsReadAcrossShardBoundaries) {
  const std::string dir = test::temp_dir("fmt");
  test::write_text(dir + "/in.txt", corpus(30));
  prepare(dir, "llmc", 37);  // an odd shard size, so windows straddle boundaries
  const auto train = data::read_token_split(dir + "/llmc", data::Split::kTrain);
  auto seq = data::open_token_dir(dir + "/llmc", "auto", 0, 0, data::WindowOrder::kSequential);
  const int64_t len = 17;
  int straddling = 0;
  std::vector<int32_t> w(len);
  for (uint64_t i = 0; i < 200; ++i) {
    seq->window(data::Split::kTrain, i, len, w.data());
    const uint64_t per_pass = (train.size() - len) / (len - 1) + 1;
    const uint64_t start = (i % per_pass) * (len - 1);
    ASSERT_EQ(w, std::vector<int32_t>(train.begin() + start, train.begin() + start + len)) << i;
    straddling += start / 37 != (start + len - 1) / 37;
  }
  EXPECT_GT(straddling, 20);
  // Random windows are contiguous slices of the concatenated shards too.
  auto rnd = data::open_token_dir(dir + "/llmc", "auto", 5, 6);
  for (uint64_t i = 0; i < 50; ++i) {
    rnd->window(data::Split::kTrain, i, len, w.data());
    EXPECT_NE(std::search(train.begin(), train.end(), w.begin(), w.end()), train.end());
  }
  // Held-out windows are the data seed's whatever the training order and run seed (the cursor
  // made them the val split's first windows, so data.sampling changed val/loss).
  auto seq5 = data::open_token_dir(dir + "/llmc", "auto", 5, 0, data::WindowOrder::kSequential);
  std::vector<int32_t> v(len);
  for (uint64_t i = 0; i < 20; ++i) {
    rnd->window(data::Split::kVal, i, 5, w.data());
    seq5->window(data::Split::kVal, i, 5, v.data());
    EXPECT_EQ(std::vector<int32_t>(w.begin(), w.begin() + 5),
              std::vector<int32_t>(v.begin(), v.begin() + 5))
        << i;
  }
}

TEST(TokenFormats, WideVocabulariesUseUint32) {
  const std::string dir = test::temp_dir("fmt");
  std::vector<int32_t> ids = {0, 1, 65535, 65536, 69999, 7};
  data::write_token_split(dir, data::TokenFormat::kLlmc, "train", ids, 70000, 4);
  int32_t header[3];
  std::ifstream(dir + "/train_000000.bin", std::ios::binary)
      .read(reinterpret_cast<char*>(header), sizeof(header));
  EXPECT_EQ(header[0], 20240801);  // llm.c's uint32 header (its Llama 3 files)
  EXPECT_EQ(header[1], 7);
  EXPECT_EQ(header[2], 4);
  data::TokenShards s;
  for (const char* f : {"/train_000000.bin", "/train_000001.bin"})
    s.add(data::map_llmc_shard(dir + f));
  std::vector<int32_t> back(ids.size());
  s.copy(0, static_cast<int64_t>(ids.size()), back.data());
  EXPECT_EQ(back, ids);
  EXPECT_THROW(data::write_token_split(dir, data::TokenFormat::kNanogpt, "x", ids, 70000, 0),
               InputError);
}

TEST(TokenFormats, BadShardsNameFileAndOffset) {
  const std::string dir = test::temp_dir("fmt");
  test::write_text(dir + "/in.txt", corpus(20));
  const std::string shard = dir + "/llmc/train_000000.bin";
  auto reopen = [&] { return what_of([&] { data::open_token_dir(dir + "/llmc", "auto", 0, 0); }); };
  prepare(dir, "llmc", 1000000);
  const int32_t bad = 1234, version = 2;
  write_bytes(shard, &bad, 4, 0);
  EXPECT_NE(reopen().find(shard + ": byte 0: magic 1234"), std::string::npos) << reopen();
  const int32_t magic = 20240520;
  write_bytes(shard, &magic, 4, 0);
  write_bytes(shard, &version, 4, 4);
  EXPECT_NE(reopen().find(shard + ": byte 4: version 2"), std::string::npos) << reopen();
  const int32_t v1 = 1;
  write_bytes(shard, &v1, 4, 4);
  test::fs::resize_file(shard, test::fs::file_size(shard) - 2);
  EXPECT_NE(reopen().find(shard + ": byte 8: the header declares"), std::string::npos) << reopen();

  // An id beyond meta.json's vocabulary names the file and the token.
  test::fs::remove_all(dir + "/llmc");
  prepare(dir, "llmc", 1000000);
  const uint16_t big = 300;
  write_bytes(shard, &big, 2, 1024 + 2 * 5);
  EXPECT_NE(
      reopen().find(shard + ": token 5 is id 300, expected ids below the vocabulary size 256"),
      std::string::npos)
      << reopen();
  test::fs::remove_all(dir + "/llmc");
  prepare(dir, "llmc", 1000000);
  test::fs::remove(dir + "/llmc/val_000000.bin");
  EXPECT_NE(reopen().find("no llm.c val shards"), std::string::npos) << reopen();
}

// meta.json values are checked for kind and range before they are converted: a float where a
// count belongs was cast to an integer out of its range (undefined behaviour), the bug fuzzing
// found in rollbacks.json's reader (tests/fuzz/fuzz_run_files.cpp) and then looked for here.
TEST(TokenFormats, MetaNumbersOfTheWrongKindAreRefused) {
  const std::string dir = test::temp_dir("fmt_meta");
  test::write_text(dir + "/in.txt", corpus(5));
  prepare(dir, "stoch", 0);
  const std::string meta = dir + "/stoch/meta.json";
  const auto good = nlohmann::json::parse(test::read_text(meta));
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"vocab_size", 1e300}, {"vocab_size", 2.5}, {"train_tokens", -5}, {"dtype", 16}}) {
    auto j = good;
    j[key] = value;
    test::write_text(meta, j.dump());
    const std::string what = what_of([&] { data::open_token_dir(dir + "/stoch", "auto", 0, 0); });
    EXPECT_NE(what.find(meta + ": " + key + ": unexpected value"), std::string::npos) << what;
  }
  test::write_text(meta, good.dump());
  EXPECT_EQ(what_of([&] { data::open_token_dir(dir + "/stoch", "auto", 0, 0); }), "no InputError");
}

// llm.c's own reader is numpy over the header: read the shards that way and compare.
TEST(TokenFormats, NumpyReadsShardsAsLlmcDoes) {
  STOCH_REQUIRE(test::python_missing("numpy"));
  const std::string py = test::python_path();
  const std::string dir = test::temp_dir("fmt");
  test::write_text(dir + "/in.txt", corpus(20));
  prepare(dir, "llmc", 150);
  const auto train = data::read_token_split(dir + "/llmc", data::Split::kTrain);
  test::write_text(dir + "/read.py",
                   "import glob, numpy as np, sys\n"
                   "ids = []\n"
                   "for f in sorted(glob.glob(sys.argv[1] + '/train_*.bin')):\n"
                   "    h = np.fromfile(f, dtype=np.int32, count=256)\n"
                   "    assert h[0] == 20240520 and h[1] == 1, h[:3]\n"
                   "    t = np.fromfile(f, dtype=np.uint16, offset=256 * 4)\n"
                   "    assert len(t) == h[2]\n"
                   "    ids += t.tolist()\n"
                   "print(len(ids), sum(i * (k + 1) for k, i in enumerate(ids)))\n");
  const std::string out = dir + "/out.txt";
  ASSERT_EQ(std::system((py + " " + dir + "/read.py " + dir + "/llmc > " + out).c_str()), 0);
  int64_t weighted = 0;
  for (size_t k = 0; k < train.size(); ++k) weighted += train[k] * static_cast<int64_t>(k + 1);
  EXPECT_EQ(test::read_text(out),
            std::to_string(train.size()) + " " + std::to_string(weighted) + "\n");
}

TEST(TokenFormats, ResumeIsExactWithTheCursorCrossingShards) {
  const std::string dir = test::temp_dir("fmtrun");
  test::write_text(dir + "/in.txt", corpus(60));
  auto r = test::run_stoch("data prepare --input " + dir + "/in.txt --out " + dir +
                           "/tok --format llmc --shard-tokens 50");
  ASSERT_EQ(r.code, 0) << r.output;
  test::write_text(
      dir + "/c.yaml",
      "task: lm\nrun: {threads: 1, seed: 2, device: cpu}\n"
      "data: {source: tokens, dir: " +
          dir +
          "/tok, sampling: sequential}\n"
          "model: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
          "train: {steps: 12, batch_size: 3, eval_every: 6, eval_batches: 2, "
          "ckpt_every: 6}\noptim: {lr: 0.01}\nschedule: {warmup_steps: 2, decay_steps: 12}\n"
          "log: {every: 1}\n");
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(dir + "/c.yaml", dir, 6, 12));
  const auto a = test::train_losses(dir + "/straight"), b = test::train_losses(dir + "/split");
  ASSERT_EQ(a.size(), 12u);
  EXPECT_EQ(a, b);  // bit-exact: the cursor resumed mid-shard
  // A model whose vocabulary is smaller than the data's is refused before a run folder exists.
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                      "/small --set model.vocab_size=100");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("model.vocab_size: 100"), std::string::npos) << r.output;
  EXPECT_FALSE(test::fs::exists(dir + "/small"));
}

}  // namespace
}  // namespace stoch

namespace stoch {
namespace {

TEST(TokenFormats, BpeFolderCarriesItsTokenizer) {
  const std::string dir = test::temp_dir("fmtbpe");
  const std::string text = corpus(80);
  test::write_text(dir + "/in.txt", text);
  auto r = test::run_stoch("tokenizer train --input " + dir + "/in.txt --vocab-size 300 --out " +
                           dir + "/tok");
  ASSERT_EQ(r.code, 0) << r.output;
  r = test::run_stoch("data prepare --input " + dir + "/in.txt --tokenizer " + dir +
                      "/tok --format llmc --shard-tokens 200 --val-fraction 0.1 --out " + dir +
                      "/bpe");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"vocab.json", "merges.txt"})
    EXPECT_EQ(test::read_text(dir + "/bpe/" + f), test::read_text(dir + "/tok/" + f)) << f;
  // The ids decode back to the corpus, the held-out ones to its tail.
  const auto tok = data::load_tokenizer(dir + "/bpe");
  const auto train = data::read_token_split(dir + "/bpe", data::Split::kTrain);
  const auto val = data::read_token_split(dir + "/bpe", data::Split::kVal);
  EXPECT_LT(train.size() + val.size(), text.size() / 2);  // subwords, not bytes
  const std::string tail = tok->decode(val.data(), val.size());
  EXPECT_EQ(tok->decode(train.data(), train.size()) + tail, text);
  auto src = data::open_token_dir(dir + "/bpe", "auto", 0, 0);
  EXPECT_EQ(src->vocab_size(), tok->vocab_size());  // at most 300: merges stop at frequency 2
  EXPECT_DOUBLE_EQ(src->val_bytes_per_token(),
                   static_cast<double>(tail.size()) / static_cast<double>(val.size()));
  EXPECT_EQ(src->tokenizer(), dir + "/bpe");

  test::write_text(dir + "/c.yaml",
                   "task: lm\nrun: {threads: 1}\ndata: {source: tokens, dir: " + dir +
                       "/bpe}\nmodel: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
                       "train: {steps: 10, batch_size: 4, eval_every: 0, eval_batches: 2}\n"
                       "optim: {lr: 0.01}\n");
  r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const double loss = test::metric_by_step(dir + "/run", "eval", "val/loss").rbegin()->second;
  const double bpb = test::metric_by_step(dir + "/run", "eval", "val/bpb").rbegin()->second;
  EXPECT_NEAR(bpb, loss / std::log(2.0) / src->val_bytes_per_token(), 1e-4 * bpb);
  // Sampling takes a text prompt through the run's tokenizer and prints text.
  r = test::run_stoch("sample " + dir + "/run --prompt \"line 12: the\" --max-tokens 5 --seed 1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("line 12: the"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace stoch
