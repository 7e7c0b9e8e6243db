#include "core/config_schema.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::config {

std::string describe_expectation(const char* type, const Spec& spec) {
  std::string s = type;
  if (!spec.choices.empty()) {
    s = "one of";
    for (size_t i = 0; i < spec.choices.size(); ++i) s += (i ? ", " : " ") + spec.choices[i];
    return s;
  }
  const bool lo = std::isfinite(spec.min), hi = std::isfinite(spec.max);
  // An integer's bounds in full ("2147483647", not "2.14748e+09").
  const bool integer = s.find("integer") != std::string::npos;
  const auto bound = [&](double v) {
    return integer && std::fabs(v) < 9e15 && v == std::floor(v)
               ? std::to_string(static_cast<int64_t>(v))
               : format_number(v, 6);
  };
  if (lo && hi) {
    s += str(" in ", spec.min_exclusive ? "(" : "[", bound(spec.min), ", ", bound(spec.max), "]");
  } else if (lo) {
    s += str(spec.min_exclusive ? " > " : " >= ", bound(spec.min));
  } else if (hi) {
    s += str(" <= ", bound(spec.max));
  }
  return s;
}

namespace {

const char* kind_name(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kMap:
      return "a mapping";
    case Node::Kind::kSeq:
      return "a list";
    case Node::Kind::kNull:
      return "nothing";
    default:
      return "a scalar";
  }
}

[[noreturn]] void fail(const Node& n, const std::string& path, const char* type, const Spec& spec) {
  std::string got = n.kind == Node::Kind::kScalar ? str("\"", n.scalar, "\"") : kind_name(n);
  throw InputError(
      str(n.where(), ": ", path, ": expected ", describe_expectation(type, spec), ", got ", got));
}

void check_range(double v, const Node& n, const std::string& path, const char* type,
                 const Spec& spec) {
  const bool low = spec.min_exclusive ? !(v > spec.min) : !(v >= spec.min);
  // No key takes an infinity: `optim.lr: .inf` is a typo's value, not a setting.
  if (low || v > spec.max || !std::isfinite(v)) fail(n, path, type, spec);
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  if (s == ".inf" || s == "inf") {
    out = INFINITY;
    return true;
  }
  if (s == "-.inf" || s == "-inf") {
    out = -INFINITY;
    return true;
  }
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno == ERANGE || *end != '\0' || std::isnan(v)) return false;
  out = v;
  return true;
}

// The shortest form that reads back as the same double, with a decimal point so that YAML
// readers see a number rather than an integer.
std::string format_double(double f) {
  if (std::isinf(f)) return f > 0 ? ".inf" : "-.inf";
  char buf[64];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

Reader::Reader(const Node* node, std::string prefix, std::string where)
    : node_(node), prefix_(std::move(prefix)), where_(std::move(where)) {
  if (node_ && node_->is_null()) node_ = nullptr;
  if (node_ && !node_->is_map()) {
    const std::string name = prefix_.empty() ? "config" : prefix_.substr(0, prefix_.size() - 1);
    throw InputError(
        str(node_->where(), ": ", name, ": expected a mapping of keys, got ", kind_name(*node_)));
  }
}

std::string Reader::path(const char* key) const {
  return prefix_ + key;
}

const Node* Reader::take(const char* key) {
  declared_.push_back(key);
  if (!node_) return nullptr;
  const Node* n = node_->find(key);
  return (n && n->is_null()) ? nullptr : n;
}

void Reader::fail_list(const Node& n, const char* key) const {
  throw InputError(
      str(n.where(), ": ", path(key), ": expected a list of mappings, got ", kind_name(n)));
}

Reader Reader::child_reader(const char* key) {
  const Node* n = take(key);
  return Reader(n, path(key) + ".", n ? n->where() : where_);
}

void Reader::operator()(const char* key, int64_t& field, const char* doc, const Spec& spec) {
  (void)doc;
  const Node* n = take(key);
  if (!n) return;
  int64_t v = 0;
  if (n->kind != Node::Kind::kScalar || !parse_int(n->scalar, v))
    fail(*n, path(key), "an integer", spec);
  check_range(static_cast<double>(v), *n, path(key), "an integer", spec);
  field = v;
}

void Reader::operator()(const char* key, int& field, const char* doc, const Spec& spec) {
  int64_t v = field;
  Spec s = spec;
  s.min = std::max<double>(s.min, std::numeric_limits<int>::min());
  s.max = std::min<double>(s.max, std::numeric_limits<int>::max());
  (*this)(key, v, doc, s);
  field = static_cast<int>(v);
}

void Reader::operator()(const char* key, double& field, const char* doc, const Spec& spec) {
  (void)doc;
  const Node* n = take(key);
  if (!n) return;
  double v = 0;
  if (n->kind != Node::Kind::kScalar || !parse_double(n->scalar, v))
    fail(*n, path(key), "a number", spec);
  check_range(v, *n, path(key), "a number", spec);
  field = v;
}

void Reader::operator()(const char* key, bool& field, const char* doc, const Spec& spec) {
  (void)doc;
  const Node* n = take(key);
  if (!n) return;
  const std::string& s = n->scalar;
  if (n->kind == Node::Kind::kScalar && (s == "true" || s == "True" || s == "TRUE")) {
    field = true;
  } else if (n->kind == Node::Kind::kScalar && (s == "false" || s == "False" || s == "FALSE")) {
    field = false;
  } else {
    fail(*n, path(key), "true or false", spec);
  }
}

void Reader::operator()(const char* key, std::string& field, const char* doc, const Spec& spec) {
  (void)doc;
  const Node* n = take(key);
  if (!n && spec.required)
    throw InputError(str(where_, ": ", path(key), ": missing; expected ",
                         describe_expectation("a string", spec)));
  if (!n) return;
  if (n->kind != Node::Kind::kScalar) fail(*n, path(key), "a string", spec);
  if (!spec.choices.empty()) {
    bool ok = false;
    for (const auto& c : spec.choices) ok = ok || c == n->scalar;
    if (!ok) {
      const std::string near = nearest(n->scalar, spec.choices);
      std::string msg = str(n->where(), ": ", path(key), ": expected ",
                            describe_expectation("a string", spec), ", got \"", n->scalar, "\"");
      if (!near.empty()) msg += str(" (did you mean ", near, "?)");
      throw InputError(msg);
    }
  }
  field = n->scalar;
}

void Reader::operator()(const char* key, std::vector<std::string>& field, const char* doc,
                        const Spec& spec) {
  (void)doc;
  const Node* n = take(key);
  if (!n) return;
  std::vector<std::string> out;
  if (n->kind == Node::Kind::kScalar) {
    out.push_back(n->scalar);
  } else if (n->kind == Node::Kind::kSeq) {
    for (const auto& e : n->seq) {
      if (e.kind != Node::Kind::kScalar) fail(e, path(key), "a list of strings", spec);
      out.push_back(e.scalar);
    }
  } else {
    fail(*n, path(key), "a list of strings", spec);
  }
  field = out;
}

namespace {

// Reads a list (or a single scalar) of numbers, each checked against the spec's range.
template <class T, class Parse>
std::vector<T> read_number_list(const Node& n, const std::string& path, const char* type,
                                const Spec& spec, Parse parse) {
  std::vector<const Node*> items;
  if (n.kind == Node::Kind::kScalar)
    items.push_back(&n);
  else if (n.kind == Node::Kind::kSeq)
    for (const auto& e : n.seq) items.push_back(&e);
  else
    fail(n, path, type, spec);
  std::vector<T> out;
  for (const Node* e : items) {
    T v{};
    if (e->kind != Node::Kind::kScalar || !parse(e->scalar, v)) fail(*e, path, type, spec);
    check_range(static_cast<double>(v), *e, path, type, spec);
    out.push_back(v);
  }
  return out;
}

}  // namespace

void Reader::operator()(const char* key, std::vector<int64_t>& field, const char* doc,
                        const Spec& spec) {
  (void)doc;
  if (const Node* n = take(key))
    field = read_number_list<int64_t>(*n, path(key), "a list of integers", spec, parse_int);
}

void Reader::operator()(const char* key, std::vector<double>& field, const char* doc,
                        const Spec& spec) {
  (void)doc;
  if (const Node* n = take(key))
    field = read_number_list<double>(*n, path(key), "a list of numbers", spec, parse_double);
}

void Reader::finish() {
  if (!node_) return;
  for (const auto& [k, v] : node_->map) {
    bool known = false;
    for (const auto& d : declared_) known = known || d == k;
    if (known) continue;
    const std::string near = nearest(k, declared_);
    std::string msg = str(v.where(), ": unknown key ", prefix_, k);
    if (!near.empty()) {
      msg += str(" (did you mean ", prefix_, near, "?)");
    } else {
      msg += " (valid keys:";
      for (const auto& d : declared_) msg += " " + d;
      msg += ")";
    }
    throw InputError(msg);
  }
}

void Printer::comment(const char* doc) {
  if (docs_ && doc && *doc) out_ += pad() + "# " + doc + "\n";
}

void Printer::line(const char* key, const std::string& value, const char* type, const char* doc,
                   const Spec& spec) {
  std::string l = pad() + key + ": " + value;
  if (docs_) {
    if (l.size() < 40) l.resize(40, ' ');
    l += str("  # ", doc, " (", describe_expectation(type, spec),
             spec.resumable ? "; may change on resume" : "",
             spec.same_setup ? "; changes at most rounding" : "",
             *spec.fixed_for_eval ? "; eval keeps the run's" : "", ")");
  }
  out_ += l + "\n";
}

void Printer::operator()(const char* key, const int64_t& f, const char* doc, const Spec& spec) {
  line(key, std::to_string(f), "an integer", doc, spec);
}
void Printer::operator()(const char* key, const int& f, const char* doc, const Spec& spec) {
  line(key, std::to_string(f), "an integer", doc, spec);
}
void Printer::operator()(const char* key, const double& f, const char* doc, const Spec& spec) {
  line(key, format_double(f), "a number", doc, spec);
}
void Printer::operator()(const char* key, const bool& f, const char* doc, const Spec& spec) {
  line(key, f ? "true" : "false", "true or false", doc, spec);
}
void Printer::operator()(const char* key, const std::string& f, const char* doc, const Spec& spec) {
  line(key, yaml_scalar(f), "a string", doc, spec);
}
void Printer::operator()(const char* key, const std::vector<std::string>& f, const char* doc,
                         const Spec& spec) {
  std::string s = "[";
  for (size_t i = 0; i < f.size(); ++i) s += (i ? ", " : "") + yaml_scalar(f[i]);
  line(key, s + "]", "a list of strings", doc, spec);
}

void Printer::operator()(const char* key, const std::vector<int64_t>& f, const char* doc,
                         const Spec& spec) {
  std::string s = "[";
  for (size_t i = 0; i < f.size(); ++i) s += (i ? ", " : "") + std::to_string(f[i]);
  line(key, s + "]", "a list of integers", doc, spec);
}

void Printer::operator()(const char* key, const std::vector<double>& f, const char* doc,
                         const Spec& spec) {
  std::string s = "[";
  for (size_t i = 0; i < f.size(); ++i) s += (i ? ", " : "") + format_double(f[i]);
  line(key, s + "]", "a list of numbers", doc, spec);
}

}  // namespace stoch::config
