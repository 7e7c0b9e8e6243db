// What every libFuzzer target of stoch defines, and the helpers they share (fuzz_main.cpp).
//
// The contract under test is stoch's rule for outside bytes: a parser either accepts them or
// throws InputError (exit 2, one line). Any other exception escaping fuzz_one(), and anything
// the sanitizers report, is a finding: the harness aborts so libFuzzer keeps the input.
#pragma once

#include <string>
#include <vector>

namespace stoch::fuzz {

// Feeds one input to the parsers under test.
void fuzz_one(const std::string& input);

// Well-formed inputs that walk each parser's normal path: the seed corpus. Written by
// `TARGET` when STOCH_FUZZ_SEEDS names a folder (scripts/fuzz does so before each run).
std::vector<std::string> fuzz_seeds();

// Inputs that hold several files are their parts joined by kPartSeparator.
extern const std::string kPartSeparator;
std::vector<std::string> split_parts(const std::string& input, size_t max_parts);
std::string join_parts(const std::vector<std::string>& parts);

// A folder of this process's own (on tmpfs where there is one), emptied by each call and removed
// at exit.
std::string scratch_dir();
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace stoch::fuzz
