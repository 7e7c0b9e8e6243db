// Config keys are declared once, in a struct's `visit` method:
//
//   struct TrainConfig {
//     int64_t steps = 1000;
//     template <class V> void visit(V& v) {
//       v("steps", steps, "optimiser steps in the whole run", Spec().at_least(1).on_resume());
//     }
//   };
//
// The same declaration is walked by the Reader (parse + validate with file:line errors and
// "did you mean"), the Printer (`stoch config`, the run's config.yaml) and the KeyLister
// (which keys exist and which may change on resume).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/config_tree.h"

namespace stoch::config {

struct Spec {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;
  std::vector<std::string> choices;
  bool resumable = false;  // may be overridden on resume: it cannot change what already happened
  bool required = false;   // a string key without a default: the Reader refuses its absence
  // Changes no trained number, or only its rounding (threads, kernels): `stoch config` says
  // "changes at most rounding", and `stoch compare` puts runs that differ only in such keys (and
  // the seed) in one group.
  bool same_setup = false;
  // Why `stoch eval --set` may not change this key (empty: it may): the checkpoint's numbers
  // depend on it, so another value would report another run's results under this run's name.
  const char* fixed_for_eval = "";

  Spec& at_least(double v) {
    min = v;
    min_exclusive = false;
    return *this;
  }
  Spec& above(double v) {
    min = v;
    min_exclusive = true;
    return *this;
  }
  Spec& at_most(double v) {
    max = v;
    return *this;
  }
  Spec& one_of(std::vector<std::string> c) {
    choices = std::move(c);
    return *this;
  }
  Spec& on_resume() {
    resumable = true;
    return *this;
  }
  Spec& changes_no_result() {
    same_setup = true;
    return *this;
  }
  Spec& fixed_for_evaluation(const char* why) {
    fixed_for_eval = why;
    return *this;
  }
  Spec& must_be_given() {
    required = true;
    return *this;
  }
};

// "an integer >= 1", "one of cpu, cuda, auto", "a number in (0, 1]".
std::string describe_expectation(const char* type, const Spec& spec);

class Reader {
 public:
  // `node` may be null (section absent: every key keeps its default). `where` locates the section.
  Reader(const Node* node, std::string prefix, std::string where);

  void operator()(const char* key, int64_t& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, int& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, double& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, bool& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, std::string& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, std::vector<std::string>& field, const char* doc,
                  const Spec& spec = {});
  void operator()(const char* key, std::vector<int64_t>& field, const char* doc,
                  const Spec& spec = {});
  void operator()(const char* key, std::vector<double>& field, const char* doc,
                  const Spec& spec = {});

  template <class S>
  void section(const char* key, S& sub, const char* doc) {
    (void)doc;
    Reader child = child_reader(key);
    sub.visit(child);
    child.finish();
  }

  // A list of structs, each read with its own visit(); items are addressed as key.<index>.
  template <class T>
  void list(const char* key, std::vector<T>& items, const char* doc) {
    (void)doc;
    const Node* n = take(key);
    if (!n) return;
    if (n->kind != Node::Kind::kSeq) fail_list(*n, key);
    items.clear();
    for (size_t i = 0; i < n->seq.size(); ++i) {
      Reader child(&n->seq[i], path(key) + "." + std::to_string(i) + ".", n->seq[i].where());
      items.emplace_back();
      items.back().visit(child);
      child.finish();
    }
  }

  Reader child_reader(const char* key);

  // Throws for any key in the section that no declaration consumed, naming the nearest one.
  void finish();

 private:
  const Node* take(const char* key);
  std::string path(const char* key) const;
  [[noreturn]] void fail_list(const Node& n, const char* key) const;

  const Node* node_;
  std::string prefix_;
  std::string where_;
  std::vector<std::string> declared_;
};

class Printer {
 public:
  explicit Printer(int indent = 0, bool with_docs = true) : indent_(indent), docs_(with_docs) {}

  void operator()(const char* key, const int64_t& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, const int& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, const double& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, const bool& field, const char* doc, const Spec& spec = {});
  void operator()(const char* key, const std::string& field, const char* doc,
                  const Spec& spec = {});
  void operator()(const char* key, const std::vector<std::string>& field, const char* doc,
                  const Spec& spec = {});
  void operator()(const char* key, const std::vector<int64_t>& field, const char* doc,
                  const Spec& spec = {});
  void operator()(const char* key, const std::vector<double>& field, const char* doc,
                  const Spec& spec = {});

  template <class S>
  void section(const char* key, S& sub, const char* doc) {
    comment(doc);
    out_ += pad() + key + ":\n";
    Printer child(indent_ + 2, docs_);
    sub.visit(child);
    out_ += child.text();
  }

  template <class T>
  void list(const char* key, std::vector<T>& items, const char* doc) {
    comment(doc);
    if (items.empty()) {
      out_ += pad() + key + ": []\n";
      return;
    }
    out_ += pad() + key + ":\n";
    for (auto& item : items) {
      Printer child(indent_ + 4, docs_);
      item.visit(child);
      std::string text = child.text();
      // "- " takes the place of the first item line's indentation.
      const size_t first = text.find_first_not_of(' ');
      text.replace(first - 2, 2, "- ");
      out_ += text;
    }
  }

  void comment(const char* doc);
  const std::string& text() const { return out_; }

 private:
  void line(const char* key, const std::string& value, const char* type, const char* doc,
            const Spec& spec);
  std::string pad() const { return std::string(indent_, ' '); }
  int indent_;
  bool docs_;
  std::string out_;
};

// Collects every declared key's dotted path, and those that may change on resume.
class KeyLister {
 public:
  explicit KeyLister(std::string prefix = "") : prefix_(std::move(prefix)) {}

  template <class T>
  void operator()(const char* key, T& field, const char* doc, const Spec& spec = {}) {
    (void)field;
    (void)doc;
    const std::string p = prefix_ + key;
    all.insert(p);
    if (spec.resumable) resumable.insert(p);
    if (spec.same_setup) same_setup.insert(p);
    if (*spec.fixed_for_eval) fixed_for_eval[p] = spec.fixed_for_eval;
  }

  template <class S>
  void section(const char* key, S& sub, const char* doc) {
    (void)doc;
    KeyLister child(prefix_ + key + ".");
    sub.visit(child);
    merge(child);
  }

  template <class T>
  void list(const char* key, std::vector<T>& items, const char* doc) {
    (void)doc;
    all.insert(prefix_ + key);
    for (size_t i = 0; i < items.size(); ++i) {
      KeyLister child(prefix_ + key + "." + std::to_string(i) + ".");
      items[i].visit(child);
      merge(child);
    }
  }

  std::set<std::string> all;
  std::set<std::string> resumable;
  std::set<std::string> same_setup;  // keys that change no result (Spec::changes_no_result)
  std::map<std::string, std::string> fixed_for_eval;  // key -> why (Spec::fixed_for_evaluation)

 private:
  void merge(const KeyLister& child) {
    all.insert(child.all.begin(), child.all.end());
    resumable.insert(child.resumable.begin(), child.resumable.end());
    same_setup.insert(child.same_setup.begin(), child.same_setup.end());
    fixed_for_eval.insert(child.fixed_for_eval.begin(), child.fixed_for_eval.end());
  }

  std::string prefix_;
};

// A config struct chosen at run time (a task's sections, a hook's parameters): the visitors
// reach the concrete struct's visit() through these virtual calls.
class Visitable {
 public:
  virtual ~Visitable() = default;
  virtual void accept(Reader& v) = 0;
  virtual void accept(Printer& v) = 0;
  virtual void accept(KeyLister& v) = 0;
};

template <class Derived>
class VisitableOf : public Visitable {
 public:
  void accept(Reader& v) override { static_cast<Derived*>(this)->visit(v); }
  void accept(Printer& v) override { static_cast<Derived*>(this)->visit(v); }
  void accept(KeyLister& v) override { static_cast<Derived*>(this)->visit(v); }
};

}  // namespace stoch::config
