#include "core/config_tree.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace fs = std::filesystem;

namespace stoch::config {

const Node* Node::find(const std::string& key) const {
  for (const auto& [k, v] : map)
    if (k == key) return &v;
  return nullptr;
}

Node* Node::find(const std::string& key) {
  for (auto& [k, v] : map)
    if (k == key) return &v;
  return nullptr;
}

Node& Node::get_or_add(const std::string& key) {
  if (kind == Kind::kNull) kind = Kind::kMap;
  if (Node* n = find(key)) return *n;
  map.emplace_back(key, Node{});
  map.back().second.file = file;
  map.back().second.line = line;
  return map.back().second;
}

std::string Node::where() const {
  if (file.empty()) return "<default>";
  if (line <= 0) return file;
  return str(file, ":", line);
}

namespace {

// Aliases let a few hundred bytes name billions of nodes (each alias of an alias multiplies
// them); no config comes near this many.
constexpr size_t kMaxNodes = 100000;

Node convert(const YAML::Node& y, const std::string& file, size_t& nodes) {
  if (++nodes > kMaxNodes)
    throw InputError(str(file, ": more than ", kMaxNodes,
                         " values (aliases that repeat a part many times over?)"));
  Node n;
  n.file = file;
  n.line = y.Mark().line >= 0 ? y.Mark().line + 1 : 0;
  switch (y.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      n.kind = Node::Kind::kNull;
      break;
    case YAML::NodeType::Scalar:
      n.kind = Node::Kind::kScalar;
      n.scalar = y.Scalar();
      break;
    case YAML::NodeType::Sequence:
      n.kind = Node::Kind::kSeq;
      for (const auto& e : y) n.seq.push_back(convert(e, file, nodes));
      break;
    case YAML::NodeType::Map: {
      n.kind = Node::Kind::kMap;
      std::set<std::string> seen;
      for (const auto& kv : y) {
        const std::string key = kv.first.Scalar();
        if (!seen.insert(key).second) {
          throw InputError(str(file, ":", kv.first.Mark().line + 1, ": duplicate key '", key, "'"));
        }
        n.map.emplace_back(key, convert(kv.second, file, nodes));
      }
      break;
    }
  }
  return n;
}

// The line where a second YAML document starts, or 0: a `---` line after the first document's
// content, or content after a `...` line. These markers end any scalar at the start of a line,
// so the lines alone tell. (yaml-cpp 0.7's LoadAll would tell too, but it loops for ever on
// some malformed text, such as a leading ",".)
int second_document_line(const std::string& text) {
  bool content = false, ended = false;
  int number = 0;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = std::min(text.find('\n', begin), text.size());
    std::string line = text.substr(begin, end - begin);
    begin = end + 1;
    ++number;
    const bool marker = line.size() >= 3 &&
                        (line.compare(0, 3, "---") == 0 || line.compare(0, 3, "...") == 0) &&
                        (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (marker) {
      if (line[0] == '.') {
        ended = ended || content;
        continue;
      }
      if (content || ended) return number;
      line = line.substr(3);  // "--- {a: 1}" starts the first document with content
    }
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#' || (line[0] == '%' && !content)) continue;
    if (ended) return number;
    content = true;
  }
  return 0;
}

Node parse_yaml(const std::string& text, const std::string& origin) {
  // YAML is Unicode text. Other bytes would pass through yaml-cpp into keys and values that a
  // written config.yaml could not reproduce (at a file's start, two of them read as a BOM).
  if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos)
    throw InputError(str(origin, ":", 1 + std::count(text.begin(), text.begin() + bad, '\n'),
                         ": not UTF-8 text (byte ", bad, ")"));
  // A second document (after `---`) would be ignored without a word.
  if (const int line = second_document_line(text))
    throw InputError(str(origin, ":", line, ": a second YAML document; a config is one document"));
  try {
    size_t nodes = 0;
    return convert(YAML::Load(text), origin, nodes);
  } catch (const YAML::Exception& e) {
    throw InputError(str(origin, ":", e.mark.line + 1, ": malformed YAML: ", e.msg, " (column ",
                         e.mark.column + 1, ")"));
  }
}

Node load_recursive(const fs::path& path, std::vector<fs::path>& stack) {
  const std::string name = path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(str(name, ": config file not found"));
  const fs::path canon = fs::weakly_canonical(path);
  for (const auto& p : stack)
    if (p == canon) throw InputError(str(name, ": `base:` files form a cycle"));
  stack.push_back(canon);

  const auto text = read_whole_file(name);
  if (!text) throw InputError(str(name, ": cannot read config file"));
  Node doc = parse_yaml(*text, name);
  if (doc.is_null()) doc.kind = Node::Kind::kMap;
  if (!doc.is_map()) throw InputError(str(doc.where(), ": expected a mapping of config sections"));

  Node result;
  result.kind = Node::Kind::kMap;
  result.file = name;
  result.line = 1;
  if (const Node* base = doc.find("base")) {
    std::vector<const Node*> items;
    if (base->kind == Node::Kind::kScalar)
      items.push_back(base);
    else if (base->kind == Node::Kind::kSeq)
      for (const auto& e : base->seq) items.push_back(&e);
    else
      throw InputError(str(base->where(), ": base: expected a file name or a list of file names"));
    for (const Node* item : items) {
      if (item->kind != Node::Kind::kScalar)
        throw InputError(str(item->where(), ": base: expected a file name"));
      fs::path p = item->scalar;
      if (p.is_relative()) p = path.parent_path() / p;
      if (!fs::is_regular_file(p, ec))
        throw InputError(str(item->where(), ": base file '", p.string(), "' not found"));
      merge(result, load_recursive(p, stack));
    }
    doc.map.erase(std::remove_if(doc.map.begin(), doc.map.end(),
                                 [](const auto& kv) { return kv.first == "base"; }),
                  doc.map.end());
  }
  merge(result, doc);
  stack.pop_back();
  return result;
}

}  // namespace

Node load_file(const std::string& path) {
  std::vector<fs::path> stack;
  return load_recursive(path, stack);
}

Node parse_text(const std::string& text, const std::string& origin) {
  return parse_yaml(text, origin);
}

void merge(Node& dst, const Node& src) {
  if (dst.is_map() && src.is_map()) {
    for (const auto& [k, v] : src.map) {
      if (Node* d = dst.find(k))
        merge(*d, v);
      else
        dst.map.emplace_back(k, v);
    }
    return;
  }
  dst = src;
}

namespace {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t") - a + 1);
}

}  // namespace

std::pair<std::string, std::string> split_assignment(const std::string& assignment,
                                                     const std::string& option) {
  const auto eq = assignment.find('=');
  // Spaces around the key are the shell's, not the key's: "train.steps = 5" sets train.steps.
  const std::string key = eq == std::string::npos ? "" : trim(assignment.substr(0, eq));
  if (key.empty())
    throw InputError(str(option, " ", assignment, ": expected KEY=VALUE, e.g. train.steps=100"));
  for (const char c : key)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw InputError(str(option, " ", assignment, ": the key holds a control character"));
  if (first_invalid_utf8(key) != std::string::npos)
    throw InputError(str(option, " ", assignment, ": the key is not UTF-8 text"));
  return {key, assignment.substr(eq + 1)};
}

void apply_override(Node& root, const std::string& assignment, const std::string& option) {
  const auto assigned = split_assignment(assignment, option);
  const std::string& key = assigned.first;
  const std::string& text = assigned.second;
  Node value = parse_yaml(text, option + " " + assignment);
  // An empty value means the empty string, not null: `--set run.name=` clears the name.
  if (value.is_null() && text.empty()) {
    value.kind = Node::Kind::kScalar;
  }
  const auto set_origin = [&](auto& self, Node& n) -> void {
    n.file = option + " " + key;
    n.line = 0;
    for (auto& kv : n.map) self(self, kv.second);
    for (auto& e : n.seq) self(self, e);
  };
  set_origin(set_origin, value);

  Node* cur = &root;
  const auto parts = split(key, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part.empty()) throw InputError(str(option, " ", assignment, ": empty key segment"));
    const bool last = i + 1 == parts.size();
    if (cur->kind == Node::Kind::kSeq) {
      size_t idx = 0;
      try {
        size_t used = 0;
        idx = std::stoul(part, &used);
        if (used != part.size()) throw std::invalid_argument(part);
      } catch (const std::exception&) {
        throw InputError(str(option, " ", assignment, ": '", part, "' must be a list index"));
      }
      if (idx >= cur->seq.size())
        throw InputError(str(option, " ", assignment, ": index ", idx,
                             " is past the end of a list of ", cur->seq.size()));
      cur = &cur->seq[idx];
    } else {
      if (cur->kind == Node::Kind::kScalar)
        throw InputError(str(option, " ", assignment, ": '", part, "' is inside a scalar value"));
      const bool added = cur->find(part) == nullptr;
      cur = &cur->get_or_add(part);
      // A section or key the option adds is the option's, not the file's: errors about it
      // (an unknown key, the wrong kind) name the option.
      if (added) {
        cur->file = option + " " + key;
        cur->line = 0;
      }
    }
    if (last) {
      if (cur->is_map() && value.is_map())
        merge(*cur, value);
      else
        *cur = value;
    }
  }
}

namespace {

// Whether `s` written plain reads back as the same string scalar wherever stoch writes one: as
// a block mapping's key or value, a block list's item and a flow list's item. Asking the parser is
// the only sure test: YAML's rules for plain scalars have too many corners to restate.
bool reads_back_plain(const std::string& s) {
  if (s.find_first_of("\n\r") != std::string::npos) return false;
  try {
    const YAML::Node m = YAML::Load("k: " + s);
    const YAML::Node l = YAML::Load("- " + s);
    const YAML::Node f = YAML::Load("[" + s + "]");
    const YAML::Node k = YAML::Load(s + ": v");  // as a key, at the start of a file
    if (!(m.IsMap() && m.size() == 1 && m["k"].IsScalar() && m["k"].Scalar() == s &&
          l.IsSequence() && l.size() == 1 && l[0].IsScalar() && l[0].Scalar() == s &&
          f.IsSequence() && f.size() == 1 && f[0].IsScalar() && f[0].Scalar() == s && k.IsMap() &&
          k.size() == 1))
      return false;
    const auto key = k.begin()->first;
    return key.IsScalar() && key.Scalar() == s;
  } catch (const YAML::Exception&) {
    return false;
  }
}

}  // namespace

std::string yaml_scalar(const std::string& s) {
  if (!s.empty() && reads_back_plain(s)) return s;
  // Double-quoted: backslash escapes for the quote, the backslash and control characters;
  // everything else (UTF-8 included) as it is.
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string to_yaml(const Node& node, int indent) {
  const std::string pad(indent, ' ');
  std::string out;
  switch (node.kind) {
    case Node::Kind::kNull:
      return "null\n";
    case Node::Kind::kScalar:
      return yaml_scalar(node.scalar) + "\n";
    case Node::Kind::kMap:
      if (node.map.empty()) return "{}\n";
      for (const auto& [k, v] : node.map) {
        out += pad + yaml_scalar(k) + ":";
        if ((v.is_map() && !v.map.empty()) || (v.kind == Node::Kind::kSeq && !v.seq.empty())) {
          out += "\n" + to_yaml(v, indent + 2);
        } else {
          out += " " + to_yaml(v, indent + 2);
        }
      }
      return out;
    case Node::Kind::kSeq:
      if (node.seq.empty()) return "[]\n";
      for (const auto& e : node.seq) {
        std::string item = to_yaml(e, indent + 2);
        // The first line of a nested block goes right after the dash.
        if ((e.is_map() && !e.map.empty()) || (e.kind == Node::Kind::kSeq && !e.seq.empty()))
          item = item.substr(indent + 2);
        out += pad + "- " + item;
      }
      return out;
  }
  return out;
}

namespace {

void add_leaves(const Node& node, const std::string& key, std::map<std::string, std::string>& out) {
  switch (node.kind) {
    case Node::Kind::kNull:
      out[key] = "null";
      break;
    case Node::Kind::kScalar:
      out[key] = node.scalar;
      break;
    case Node::Kind::kMap:
      if (node.map.empty()) out[key] = "{}";
      for (const auto& [k, v] : node.map) add_leaves(v, key.empty() ? k : key + "." + k, out);
      break;
    case Node::Kind::kSeq:
      if (node.seq.empty()) out[key] = "[]";
      for (size_t i = 0; i < node.seq.size(); ++i) add_leaves(node.seq[i], str(key, ".", i), out);
      break;
  }
}

}  // namespace

std::map<std::string, std::string> leaves(const Node& node) {
  std::map<std::string, std::string> out;
  add_leaves(node, "", out);
  return out;
}

std::optional<std::string> first_differing_key(const std::map<std::string, std::string>& a,
                                               const std::map<std::string, std::string>& b) {
  auto x = a.begin();
  auto y = b.begin();
  while (x != a.end() && y != b.end() && *x == *y) ++x, ++y;
  if (x == a.end() && y == b.end()) return std::nullopt;
  // The smaller of the two keys where they part is absent from the other side, or differs.
  const bool from_a = y == b.end() || (x != a.end() && x->first <= y->first);
  return from_a ? x->first : y->first;
}

std::optional<LeafDifference> first_difference(const std::map<std::string, std::string>& a,
                                               const std::map<std::string, std::string>& b) {
  const auto key = first_differing_key(a, b);
  if (!key) return std::nullopt;
  const auto value = [&](const std::map<std::string, std::string>& m) {
    const auto it = m.find(*key);
    return it == m.end() ? std::string("(absent)") : it->second;
  };
  return LeafDifference{*key, value(a), value(b)};
}

}  // namespace stoch::config
