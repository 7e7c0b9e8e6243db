// A Python list of small mutable records, for Seaquest's entity lists. MinAtar mutates records
// while iterating and removes them with list.remove(), so three CPython behaviours matter:
// remove() drops the first *equal* record (not necessarily the one in hand), a record stays
// usable after removal (the loop variable still refers to it), and iteration goes by position.
// Records live in slots that keep their address until the list next grows, so references held
// across remove() stay valid; nothing is appended to a list while it is being iterated.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "rl/state_io.h"

namespace stoch::rl::minatar {

template <int N>
class PyList {
 public:
  using Record = std::array<int32_t, N>;

  explicit PyList(size_t capacity = 64) {
    slots_.reserve(capacity);
    order_.reserve(capacity);
    free_.reserve(capacity);
  }

  int size() const { return static_cast<int>(order_.size()); }
  Record& operator[](int i) { return slots_[order_[i]]; }
  const Record& operator[](int i) const { return slots_[order_[i]]; }

  void append(const Record& r) {
    int slot;
    if (free_.empty()) {
      slot = static_cast<int>(slots_.size());
      slots_.push_back(r);
    } else {
      slot = free_.back();
      free_.pop_back();
      slots_[slot] = r;
    }
    order_.push_back(slot);
  }

  // list.remove(r): the first record equal to r leaves the list (Python would raise if none).
  void remove(const Record& r) {
    for (size_t k = 0; k < order_.size(); ++k) {
      if (slots_[order_[k]] == r) {
        free_.push_back(order_[k]);
        order_.erase(order_.begin() + static_cast<std::ptrdiff_t>(k));
        return;
      }
    }
    throw std::logic_error("PyList::remove: record not in list");
  }

  void clear() {
    slots_.clear();
    order_.clear();
    free_.clear();
  }

  void save(StateWriter& w) const {
    w.put<uint32_t>(static_cast<uint32_t>(order_.size()));
    for (int slot : order_) w.put(slots_[slot]);
  }

  // Replaces the contents with what save() wrote.
  void load(StateReader& r, uint32_t max_size) {
    const uint32_t n = r.get<uint32_t>();
    if (n > max_size) throw std::runtime_error("environment state has a bad list length");
    clear();
    for (uint32_t i = 0; i < n; ++i) append(r.get<Record>());
  }

 private:
  std::vector<Record> slots_;
  std::vector<int> order_;  // positions in the Python list -> slots
  std::vector<int> free_;
};

}  // namespace stoch::rl::minatar
