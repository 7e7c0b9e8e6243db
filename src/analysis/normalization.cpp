#include "analysis/normalization.h"

#include <cmath>
#include <cstdlib>

#include "core/config_tree.h"
#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch::analysis {
namespace {

const char* kForms = "expected {random: R, reference: S} or {min: A, max: B}";

double number(const config::Node& node, const std::string& where) {
  if (node.kind == config::Node::Kind::kScalar && !node.scalar.empty()) {
    char* end = nullptr;
    const double v = std::strtod(node.scalar.c_str(), &end);
    if (*end == '\0' && std::isfinite(v)) return v;
  }
  throw InputError(str(where, ": expected a finite number"));
}

}  // namespace

double Normalization::apply(const std::string& task, double score) const {
  const auto it = by_task.find(task);
  if (it == by_task.end()) throw InputError(str(file, ": no scores for task \"", task, "\""));
  return (score - it->second.zero) / (it->second.one - it->second.zero);
}

void Normalization::check_covers(const std::vector<std::string>& tasks) const {
  for (const auto& task : tasks)
    if (!by_task.count(task))
      throw InputError(str(file, ": no scores for task \"", task,
                           "\" (the runs' tasks: ", join(tasks, ", "), ")"));
}

Normalization read_normalization(const std::string& path) {
  const auto text = read_whole_file(path);
  if (!text) throw InputError(str(path, ": cannot read"));
  const config::Node root = config::parse_text(*text, path);
  if (!root.is_map() || root.map.empty())
    throw InputError(str(path, ": expected a map of task: {random: R, reference: S}"));
  Normalization n;
  n.file = path;
  bool first = true;
  for (const auto& [task, entry] : root.map) {
    const std::string where = str(entry.where(), ": ", task);
    const bool reference = entry.find("random") || entry.find("reference");
    const char* zero_key = reference ? "random" : "min";
    const char* one_key = reference ? "reference" : "max";
    const config::Node* zero = entry.is_map() ? entry.find(zero_key) : nullptr;
    const config::Node* one = entry.is_map() ? entry.find(one_key) : nullptr;
    if (!zero || !one || entry.map.size() != 2) throw InputError(str(where, ": ", kForms));
    if (!first && reference != n.reference_form)
      throw InputError(str(where, ": mixes random/reference with min/max; use one form"));
    first = false;
    n.reference_form = reference;
    Normalization::Range r{number(*zero, str(where, ".", zero_key)),
                           number(*one, str(where, ".", one_key))};
    if (r.zero == r.one)
      throw InputError(str(where, ": ", zero_key, " equals ", one_key, "; nothing to scale by"));
    // The min/max form keeps the metric's direction, which max below min would turn round.
    if (!reference && r.zero > r.one)
      throw InputError(str(where,
                           ": min is above max; expected min < max (random/reference "
                           "maps a worse random score to 0 whatever the direction)"));
    n.by_task[task] = r;
  }
  return n;
}

}  // namespace stoch::analysis
