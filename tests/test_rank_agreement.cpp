// The checks ranks make when they meet: configs agree leaf by leaf (however written), and data
// facts agree exactly in whole numbers and to 1e-9 elsewhere.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/errors.h"
#include "train/rank_agreement.h"

namespace stoch {
namespace {

const std::vector<std::string> kWho = {"rank 0 on a", "rank 1 on b"};

std::string refusal(void (*check)(const std::vector<std::string>&, const std::vector<std::string>&),
                    const std::string& r0, const std::string& r1) {
  try {
    check({r0, r1}, kWho);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(RankAgreement, ConfigsAgreeByLeavesNotByText) {
  EXPECT_EQ(refusal(train::check_configs_agree, "a: {b: 1, c: x}\n", "a:\n  c: x\n  b: 1\n"), "");
  EXPECT_EQ(refusal(train::check_configs_agree, "a: {b: 1, c: x}\n", "a: {b: 2, c: x}\n"),
            "config differs between ranks: a.b is 1 on rank 0 on a but 2 on rank 1 on b; start "
            "every rank with the same config");
  EXPECT_NE(refusal(train::check_configs_agree, "a: {b: 1}\n", "a: {b: 1, c: x}\n")
                .find("a.c is (absent) on rank 0 on a but x on rank 1 on b"),
            std::string::npos);
}

TEST(RankAgreement, DataFactsAgreeExactlyInWholeNumbersAndTo1e9Elsewhere) {
  const auto data = [](const std::string& entropy, const std::string& crc) {
    return "data/entropy " + entropy + "\ndata/windows_crc32c " + crc + "\n";
  };
  // Another CPU's rounding of a vectorised sum.
  EXPECT_EQ(refusal(train::check_data_agrees, data("2.0794415416798357", "123456"),
                    data("2.0794415416798362", "123456")),
            "");
  EXPECT_EQ(refusal(train::check_data_agrees, data("2.079441541", "123456"),
                    data("2.079441542", "123456")),
            "");  // 5e-10 apart
  EXPECT_NE(
      refusal(train::check_data_agrees, data("2.07944154", "123456"), data("2.07944155", "123456"))
          .find("data differs between ranks with the same config: data/entropy "
                "2.07944154 on rank 0 on a but data/entropy 2.07944155 on rank 1 on b"),
      std::string::npos);
  EXPECT_NE(refusal(train::check_data_agrees, data("2", "123456"), data("2", "123457"))
                .find("data/windows_crc32c 123456 on rank 0 on a but data/windows_crc32c 123457"),
            std::string::npos);
  EXPECT_NE(refusal(train::check_data_agrees, data("2", "1"), "data/entropy 2\n")
                .find("but (none) on rank 1 on b"),
            std::string::npos);
}

}  // namespace
}  // namespace stoch
