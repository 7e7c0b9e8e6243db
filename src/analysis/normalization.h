// Per-task score normalisation for `stoch compare --normalize FILE`, so that scores of tasks
// with different scales can be aggregated (rliable's protocol: normalised scores, then IQM).
//
// FILE is YAML, one entry per task, all in one of two forms:
//   breakout: {random: 0.5, reference: 13.1}   # (score - random) / (reference - random)
//   breakout: {min: 0, max: 60}                # (score - min) / (max - min)
// The random/reference form maps a random policy to 0 and the reference to 1 whatever the
// metric's direction, so normalised scores are better when higher and the optimality gap is
// measured to 1. The min/max form keeps the metric's direction.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace stoch::analysis {

struct Normalization {
  std::string file;
  bool reference_form = false;  // random/reference (else min/max)
  struct Range {
    double zero = 0, one = 1;  // the scores mapped to 0 and 1
  };
  std::map<std::string, Range> by_task;

  // Normalised score of `task`. Throws InputError naming the file when the task is absent.
  double apply(const std::string& task, double score) const;
  // InputError naming the file and the first task of `tasks` it lacks.
  void check_covers(const std::vector<std::string>& tasks) const;
};

// Throws InputError naming the file (and line) for a missing file, malformed YAML, an entry
// of neither form, forms mixed, a non-finite number, zero equal to one, or min above max.
Normalization read_normalization(const std::string& path);

}  // namespace stoch::analysis
