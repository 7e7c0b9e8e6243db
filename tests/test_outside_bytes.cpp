// The LibTorch-free parsers of outside bytes: checkpoint files (the safetensors container,
// manifest.json, state.json) and configs. Every malformation is an InputError naming the file,
// never another exception. The same parsers are fuzzed (tests/fuzz); what the fuzzers found is
// kept here.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/checkpoint_manifest.h"
#include "core/config_tree.h"
#include "core/errors.h"
#include "core/safetensors_layout.h"

namespace stoch {
namespace {

// A container whose header is `json` (padded) followed by `data_bytes` bytes of data.
std::string container(const std::string& json, size_t data_bytes) {
  std::string out;
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return out + json + std::string(data_bytes, '\0');
}

void expect_refused(const std::string& file, const std::string& says) {
  try {
    parse_safetensors_layout(file, "x.safetensors");
    FAIL() << "accepted; expected an error saying " << says;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(SafetensorsLayout, ReadsWhatItsWriterLaysOut) {
  const std::vector<SafetensorsEntry> entries = {
      {"b", "F32", {2, 3}}, {"a", "I64", {}}, {"empty", "BF16", {0, 4}}};
  const std::string file = safetensors_header(entries, {{"k", "v"}}) + std::string(24 + 8, '\1');
  const SafetensorsLayout l = parse_safetensors_layout(file, "x.safetensors");
  ASSERT_EQ(l.entries.size(), 3u);
  EXPECT_EQ((l.data_start - 8) % 8, 0u);
  // In data order: b's 24 bytes, then a's 8, the empty tensor at either end of them.
  uint64_t covered = 0;
  for (const auto& e : l.entries) covered += e.end - e.begin;
  EXPECT_EQ(covered, 32u);
  EXPECT_EQ(l.metadata.at("k"), "v");
}

TEST(SafetensorsLayout, RefusesEveryMalformationWithAnInputError) {
  const auto one = [](const std::string& entry, size_t data) {
    return container("{\"t\": " + entry + "}", data);
  };
  expect_refused("short", "too short");
  expect_refused(container("[1, 2]", 0), "not a JSON object");
  expect_refused(container("{\"t\": ", 0), "bad safetensors header");
  expect_refused(one("7", 0), "not a JSON object");
  expect_refused(one("{\"dtype\": \"F8_E4M3\", \"shape\": [1], \"data_offsets\": [0, 1]}", 1),
                 "unsupported dtype");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}", 4),
                 "non-negative integer");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}", 4),
                 "non-negative integer");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}", 4),
                 "do not match its shape");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}", 4),
                 "pair of non-negative integers");
  // 2^40 x 2^40 floats: the byte count overflows 64 bits and must not wrap to a small number.
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776, 16], "
                     "\"data_offsets\": [0, 0]}",
                     0),
                 "do not match its shape");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", 4),
                 "cover 8");
  expect_refused(one("{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 8),
                 "cover 4");
  expect_refused(container("{\"a\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2]},"
                           " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [1, 3]}}",
                           3),
                 "overlap");
  expect_refused(
      container("{\"a\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]}}", 2),
      "hole");
  expect_refused(container("{\"__metadata__\": {\"k\": 1}}", 0), "is not a string");
  std::string huge_length = container("{}", 0);
  huge_length[7] = '\x7f';
  expect_refused(huge_length, "past end of file");
}

void expect_manifest_refused(const nlohmann::json& m, const std::string& says) {
  try {
    parse_checkpoint_manifest(m.dump(), "step-00000100/manifest.json", 1, 100);
    FAIL() << "accepted " << m.dump() << "; expected an error saying " << says;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("manifest.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

TEST(CheckpointManifest, RoundTripsAndRefusesWhatWouldMisleadTheLoader) {
  CheckpointManifest m{1, 100, "2.11.0", {{"model.safetensors", 10, "0000abcd"}}};
  const auto back = parse_checkpoint_manifest(manifest_json(m).dump(), "manifest.json", 1, 100);
  ASSERT_EQ(back.files.size(), 1u);
  EXPECT_EQ(back.files[0].crc32c, "0000abcd");
  EXPECT_EQ(back.files[0].bytes, 10u);

  const nlohmann::json good = manifest_json(m);
  auto with = [&](const nlohmann::json::json_pointer& at, const nlohmann::json& v) {
    nlohmann::json j = good;
    j[at] = v;
    return j;
  };
  expect_manifest_refused(with("/format"_json_pointer, "other"), "not a stoch checkpoint");
  expect_manifest_refused(with("/format_version"_json_pointer, 2), "newer than");
  expect_manifest_refused(with("/format_version"_json_pointer, "1"), "format_version");
  expect_manifest_refused(with("/step"_json_pointer, 99), "the step its folder is named for");
  expect_manifest_refused(with("/files"_json_pointer, nlohmann::json::array()), "\"files\"");
  expect_manifest_refused(
      with("/files"_json_pointer, {{"../../outside", {{"bytes", 1}, {"crc32c", "00000000"}}}}),
      "not a file in the folder");
  expect_manifest_refused(with("/files/model.safetensors/bytes"_json_pointer, -1), "8 hex digits");
  expect_manifest_refused(with("/files/model.safetensors/crc32c"_json_pointer, "xyz"),
                          "8 hex digits");
  try {
    parse_checkpoint_manifest("{\"format\":", "manifest.json", 1, 100);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not JSON"), std::string::npos) << e.what();
  }
}

TEST(CheckpointState, ChecksTheKeysTheLoopReads) {
  const nlohmann::json good = {{"step", 100},
                               {"world_size", 2},
                               {"interval_loss", nullptr},
                               {"elapsed_s", 3.5},
                               {"task", "lm"}};
  EXPECT_NO_THROW(parse_checkpoint_state(good.dump(), "state.json", 100));
  const auto refused = [&](const char* key, const nlohmann::json& v, const std::string& says) {
    nlohmann::json j = good;
    j[key] = v;
    try {
      parse_checkpoint_state(j.dump(), "state.json", 100);
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused("step", "100", "\"step\" is not 100");
  refused("step", 7, "\"step\" is not 100");
  refused("world_size", 0, "at least 1");
  refused("micro_batches", -5, "non-negative integer");
  refused("tokens_seen", 1.5, "non-negative integer");
  refused("elapsed_s", "soon", "a number");
  refused("task", 3, "a string");
  EXPECT_THROW(parse_checkpoint_state("[]", "state.json", 100), InputError);
}

// Found by fuzzing (tests/fuzz/fuzz_config.cpp): a run's config.yaml must read back as the
// config it was written from, whatever strings its keys and values hold.
TEST(ConfigYaml, WrittenKeysAndScalarsReadBackAsTheSameStrings) {
  const std::vector<std::string> strings = {"plain",
                                            " lead",
                                            "trail ",
                                            "a: b",
                                            "a:",
                                            "- x",
                                            "? q",
                                            "a, b",
                                            "[x",
                                            "x]",
                                            "{y}",
                                            "#c",
                                            "a #c",
                                            "\t",
                                            "tab\tin",
                                            "null",
                                            "~",
                                            "NULL",
                                            "true",
                                            "0x1F",
                                            "1e5",
                                            "'q'",
                                            "\"dq\"",
                                            "back\\slash",
                                            "two\nlines",
                                            "cr\rx",
                                            "\x01\x7f",
                                            "&anchor",
                                            "*alias",
                                            "!tag",
                                            "|",
                                            ">",
                                            "%x",
                                            "@x",
                                            "`x",
                                            "caf\xc3\xa9",
                                            "\xef\xbb\xbf"
                                            "bom",
                                            "---",
                                            "...",
                                            "x: y: z"};
  for (const auto& s : strings) {
    config::Node root = config::parse_text("{}", "t");
    config::Node value;
    value.kind = config::Node::Kind::kScalar;
    value.scalar = s;
    root.get_or_add(s) = value;
    root.get_or_add("list").kind = config::Node::Kind::kSeq;
    root.get_or_add("list").seq.push_back(value);
    const std::string yaml = config::to_yaml(root);
    config::Node back;
    ASSERT_NO_THROW(back = config::parse_text(yaml, "written")) << yaml;
    EXPECT_EQ(config::leaves(back), config::leaves(root)) << yaml;
    // In a flow list too, as `stoch config` prints lists of strings.
    const config::Node flow = config::parse_text("[" + config::yaml_scalar(s) + "]", "flow");
    ASSERT_EQ(flow.seq.size(), 1u) << config::yaml_scalar(s);
    EXPECT_EQ(flow.seq[0].scalar, s);
  }
}

TEST(ConfigYaml, SetKeysAreTrimmedAndMustBeText) {
  config::Node root = config::parse_text("train: {steps: 1}", "t");
  config::apply_override(root, "train.steps = 5");
  EXPECT_EQ(config::leaves(root).at("train.steps"), "5");
  EXPECT_EQ(config::leaves(root).count("train.steps "), 0u);
  EXPECT_THROW(config::apply_override(root,
                                      "train.st\x01"
                                      "eps=1"),
               InputError);
  EXPECT_THROW(config::apply_override(root, "train.\xfe\xff=1"), InputError);
  EXPECT_THROW(config::apply_override(root, " =1"), InputError);
}

TEST(ConfigYaml, TextThatIsNotUtf8IsRefusedNamingTheLine) {
  try {
    config::parse_text(
        "a: 1\n\xfe\xff"
        "b: 2\n",
        "x.yaml");
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("x.yaml:2: not UTF-8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(config::parse_text("a: \xc0\xaf", "t"), InputError);      // overlong
  EXPECT_THROW(config::parse_text("a: \xed\xa0\x80", "t"), InputError);  // a surrogate
  EXPECT_NO_THROW(config::parse_text("a: caf\xc3\xa9 \xf0\x9f\x99\x82", "t"));
}

}  // namespace
}  // namespace stoch
