// RUN_DIR/rollbacks.json, read and written as a run rolls back (train/rollbacks.h): a damaged
// record is refused by name on read, and a record that is valid where it matters (count,
// lr_scale) but whose event list was damaged by hand is repaired, not crashed on, when the next
// rollback writes it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "test_util.h"
#include "train/rollbacks.h"

namespace stoch {
namespace {

TEST(Rollbacks, ReadRefusesADamagedRecordNamingTheFile) {
  const std::string dir = test::temp_dir("rollbacks_bad");
  EXPECT_EQ(train::Rollbacks::read(dir).count, 0);  // none yet
  // The last two were found by fuzzing (tests/fuzz/fuzz_run_files.cpp): a float count was cast
  // to an integer out of its range (undefined behaviour) before any check could see it.
  for (const std::string text :
       {"{", "[]", "{\"count\": -1, \"lr_scale\": 0.5}", "{\"count\": 1, \"lr_scale\": 0}",
        "{\"count\": \"one\"}", "{\"count\": 1e300, \"lr_scale\": 0.5}",
        "{\"count\": 1.5, \"lr_scale\": 0.5}"}) {
    test::write_text(dir + "/rollbacks.json", text);
    try {
      train::Rollbacks::read(dir);
      ADD_FAILURE() << "accepted " << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(dir + "/rollbacks.json: expected"), std::string::npos)
          << e.what();
    }
  }
}

TEST(Rollbacks, WriteRepairsADamagedEventList) {
  const std::string dir = test::temp_dir("rollbacks_events");
  test::write_text(dir + "/rollbacks.json",
                   "{\"count\": 1, \"lr_scale\": 0.5, \"events\": \"edited by hand\"}");
  auto r = train::Rollbacks::read(dir);
  ASSERT_EQ(r.count, 1);
  r.count = 2;
  r.lr_scale = 0.25;
  r.write(dir, 40, "non-finite loss");
  const auto j = nlohmann::json::parse(test::read_text(dir + "/rollbacks.json"));
  ASSERT_TRUE(j["events"].is_array());
  ASSERT_EQ(j["events"].size(), 1u);
  EXPECT_EQ(j["events"][0]["step"], 40);
  EXPECT_EQ(train::Rollbacks::read(dir).count, 2);
  EXPECT_DOUBLE_EQ(train::Rollbacks::read(dir).lr_scale, 0.25);
}

}  // namespace
}  // namespace stoch
