// Config YAML, `base:` files and `--set` values: parsed, merged, overridden, read through the
// typed schema (every field kind), and written back. Parts: the config file, one --set
// assignment per line, the base file it may name as "base.yaml".
//
// Two properties beyond "no crash": what stoch writes as a run's config.yaml reads back as the
// same leaves, and a struct printed by the schema reads back to the same values.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "core/config_schema.h"
#include "core/config_tree.h"
#include "fuzz_target.h"

namespace stoch::fuzz {
namespace {

struct Item {
  std::string name = "x";
  double weight = 1.0;
  template <class V>
  void visit(V& v) {
    v("name", name, "an item's name");
    v("weight", weight, "its weight", config::Spec().above(0));
  }
};

struct Section {
  int64_t steps = 10;
  int width = 4;
  bool enabled = false;
  std::string mode = "a";
  template <class V>
  void visit(V& v) {
    v("steps", steps, "steps", config::Spec().at_least(1).on_resume());
    v("width", width, "width", config::Spec().at_least(1).at_most(1 << 20));
    v("enabled", enabled, "a switch");
    v("mode", mode, "a choice", config::Spec().one_of({"a", "b", "c"}));
  }
};

// Every kind of field the schema reads, so the Reader's conversions all see fuzzed scalars.
struct Fuzzed {
  std::string task = "lm";
  double lr = 1e-3;
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  std::vector<double> rates;
  Section train, model;
  std::vector<Item> items;
  template <class V>
  void visit(V& v) {
    v("task", task, "the task");
    v("lr", lr, "a rate", config::Spec().above(0).at_most(10));
    v("names", names, "names");
    v("sizes", sizes, "sizes");
    v("rates", rates, "rates");
    v.section("train", train, "a section");
    v.section("model", model, "another");
    v.list("items", items, "a list of structs");
  }
  bool operator==(const Fuzzed& o) const {
    const auto same = [](const Section& a, const Section& b) {
      return a.steps == b.steps && a.width == b.width && a.enabled == b.enabled && a.mode == b.mode;
    };
    if (items.size() != o.items.size()) return false;
    for (size_t i = 0; i < items.size(); ++i)
      if (items[i].name != o.items[i].name || items[i].weight != o.items[i].weight) return false;
    return task == o.task && lr == o.lr && names == o.names && sizes == o.sizes &&
           rates == o.rates && same(train, o.train) && same(model, o.model);
  }
};

Fuzzed read_fuzzed(const config::Node& root) {
  Fuzzed f;
  config::Reader reader(&root, "", root.where());
  f.visit(reader);
  reader.finish();
  return f;
}

[[noreturn]] void fail(const std::string& what, const std::string& a, const std::string& b) {
  std::cerr << "finding: " << what << "\n--- first\n" << a << "\n--- second\n" << b << "\n";
  std::abort();
}

std::string dump_leaves(const config::Node& n) {
  std::ostringstream out;
  for (const auto& [k, v] : config::leaves(n)) out << k << " = [" << v << "]\n";
  return out.str();
}

}  // namespace

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 3);
  const std::string dir = scratch_dir();
  write_file(dir + "/run.yaml", parts[0]);
  write_file(dir + "/base.yaml", parts[2]);
  config::Node root = config::load_file(dir + "/run.yaml");
  std::istringstream sets(parts[1]);
  for (std::string line; std::getline(sets, line);)
    if (!line.empty()) config::apply_override(root, line);

  const std::string yaml = config::to_yaml(root);
  const config::Node back = config::parse_text(yaml, "round-trip");
  if (config::leaves(back) != config::leaves(root))
    fail("config.yaml does not read back as written", dump_leaves(root), dump_leaves(back) + yaml);

  const Fuzzed f = read_fuzzed(root);
  config::Printer printer(0, false);
  Fuzzed copy = f;
  copy.visit(printer);
  const Fuzzed g = read_fuzzed(config::parse_text(printer.text(), "printed"));
  if (!(f == g)) fail("a printed struct does not read back", dump_leaves(root), printer.text());
}

std::vector<std::string> fuzz_seeds() {
  std::vector<std::string> seeds = {
      join_parts({"task: lm\nlr: 0.01\nnames: [a, b]\nsizes: [1, 2]\nrates: [0.5]\n"
                  "train: {steps: 5, width: 8, enabled: true, mode: b}\n"
                  "items:\n  - {name: q, weight: 2}\n",
                  "train.steps=7\nitems.0.name=\"z\"\nsizes=[3, 4]", ""}),
      join_parts({"base: base.yaml\nmodel:\n  width: 2\n", "model.mode=c",
                  "task: value\nmodel: {steps: 3}\n"}),
  };
  const std::string root = STOCH_SOURCE_DIR "/configs";
  for (const auto& e : std::filesystem::recursive_directory_iterator(root))
    if (e.path().extension() == ".yaml")
      seeds.push_back(join_parts({read_file(e.path().string()), "train.steps=3\nseed=1", ""}));
  return seeds;
}

}  // namespace stoch::fuzz
