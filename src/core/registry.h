// Name -> factory tables. An entry is data, added next to what it builds:
//   const bool registered = registry<TaskEntry>().add("lm", {...});
// or, for most kinds, through its helper (register_task, register_hook, register_env).
// A config key names the entry; an unknown name is an input error with the nearest valid one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch {

template <class Entry>
class Registry {
 public:
  bool add(const std::string& name, Entry entry) {
    entries_[name] = std::move(entry);
    return true;
  }

  bool has(const std::string& name) const { return entries_.count(name) > 0; }

  // The entry, or null when none has this name (for reading a capability of a name that may be
  // unknown, e.g. one from an old run's config).
  const Entry* find(const std::string& name) const {
    auto it = entries_.find(name);
    return it == entries_.end() ? nullptr : &it->second;
  }

  // `what` names the config key in the error, e.g. "task".
  const Entry& get(const std::string& name, const std::string& what) const {
    auto it = entries_.find(name);
    if (it != entries_.end()) return it->second;
    std::string msg = str(what, ": unknown name \"", name, "\"");
    const std::string near = nearest(name, names());
    if (!near.empty()) msg += str(" (did you mean ", near, "?)");
    msg += " (known:";
    for (const auto& n : names()) msg += " " + n;
    throw InputError(msg + ")");
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }

  // "name (doc); name (doc)" over every entry, for the doc of the key that names one (entries
  // with a `doc`), so a new entry documents itself.
  std::string describe() const {
    std::string out;
    for (const auto& [name, entry] : entries_)
      out += str(out.empty() ? "" : "; ", name, " (", entry.doc, ")");
    return out;
  }

 private:
  std::map<std::string, Entry> entries_;
};

template <class Entry>
Registry<Entry>& registry() {
  static Registry<Entry> r;
  return r;
}

}  // namespace stoch
