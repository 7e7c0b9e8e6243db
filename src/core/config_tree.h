// A YAML document as a tree whose every value remembers where it was written (file and line),
// so that a bad value found after `base:` merging and `--set` overrides still names its origin.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stoch::config {

struct Node {
  enum class Kind { kNull, kScalar, kMap, kSeq };
  Kind kind = Kind::kNull;
  std::string scalar;
  std::vector<std::pair<std::string, Node>> map;  // in document order
  std::vector<Node> seq;
  std::string file;  // "configs/x.yaml", or "--set" for command-line overrides
  int line = 0;      // 1-based line in `file`; 0 when unknown

  bool is_map() const { return kind == Kind::kMap; }
  bool is_null() const { return kind == Kind::kNull; }
  const Node* find(const std::string& key) const;
  Node* find(const std::string& key);
  Node& get_or_add(const std::string& key);  // turns a null node into a map
  std::string where() const;                 // "file:line" or "--set"
};

// Reads a YAML file and the `base:` files it names (relative to it, earlier bases first, the
// file itself last). Throws InputError naming the file and line on malformed YAML,
// a missing file or a cycle.
Node load_file(const std::string& path);

// Parses YAML text (used for --set values and tests); `origin` names it in errors.
Node parse_text(const std::string& text, const std::string& origin);

// Overlays src onto dst: maps merge key by key, anything else replaces.
void merge(Node& dst, const Node& src);

// Applies "a.b.c=value" (value parsed as YAML; list elements addressed by index). `option`
// is the command-line option that gave it, named in errors.
void apply_override(Node& root, const std::string& assignment, const std::string& option = "--set");

// Splits "a.b=value" into its dotted key and value text; throws InputError when malformed.
std::pair<std::string, std::string> split_assignment(const std::string& assignment,
                                                     const std::string& option = "--set");

// The leaves as "a.b.c" -> scalar ("a.list.0" for list elements; "null", "{}" and "[]" for
// empty values).
std::map<std::string, std::string> leaves(const Node& node);

// The first key, in sorted order, whose value differs between two sets of leaves (a key on one
// side only differs); nothing when they are equal.
std::optional<std::string> first_differing_key(const std::map<std::string, std::string>& a,
                                               const std::map<std::string, std::string>& b);

// That key with each side's value ("(absent)" where a side lacks it); nothing when equal.
struct LeafDifference {
  std::string key, a, b;
};
std::optional<LeafDifference> first_difference(const std::map<std::string, std::string>& a,
                                               const std::map<std::string, std::string>& b);

// Writes a node as YAML (scalars quoted when YAML would misread them).
std::string to_yaml(const Node& node, int indent = 0);

// Quotes a scalar for YAML output when it would not read back as the same string.
std::string yaml_scalar(const std::string& s);

}  // namespace stoch::config
