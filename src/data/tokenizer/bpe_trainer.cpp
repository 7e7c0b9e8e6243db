#include "data/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <unordered_map>

#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/flat_maps.h"

namespace stoch::data {
namespace {

// A candidate merge in the queue. Its count may be stale (pairs lose occurrences as other
// merges consume them): a popped candidate whose count is out of date goes back with the current
// count. `words` are the words it is merged in, as `tokenizers` keeps them per queue entry.
struct Candidate {
  int64_t count;
  uint64_t pair;
  std::vector<uint32_t> words;
};

// Max-heap order: higher count first, then the smaller pair.
bool lower_priority(const Candidate& x, const Candidate& y) {
  if (x.count != y.count) return x.count < y.count;
  return x.pair > y.pair;
}

class MergeQueue {
 public:
  void push(Candidate c) {
    heap_.push_back(std::move(c));
    std::push_heap(heap_.begin(), heap_.end(), lower_priority);
  }
  bool empty() const { return heap_.empty(); }
  Candidate pop() {
    std::pop_heap(heap_.begin(), heap_.end(), lower_priority);
    Candidate c = std::move(heap_.back());
    heap_.pop_back();
    return c;
  }

 private:
  std::vector<Candidate> heap_;
};

// The words as sequences of token ids in one array; merging only shortens them.
struct Words {
  std::vector<uint32_t> symbols;
  std::vector<size_t> begin;
  std::vector<uint32_t> length;
  std::vector<int64_t> count;
};

// Pairs whose count grew in this step, and the words where they did (ascending, unique).
class GrownPairs {
 public:
  void add(uint64_t pair, uint32_t word) {
    uint32_t& slot = index_[pair];
    if (slot == 0) {
      pairs_.push_back(pair);
      words_.emplace_back();
      slot = static_cast<uint32_t>(pairs_.size());
    }
    auto& w = words_[slot - 1];
    if (w.empty() || w.back() != word) w.push_back(word);
  }
  size_t size() const { return pairs_.size(); }
  uint64_t pair(size_t i) const { return pairs_[i]; }
  std::vector<uint32_t>& words(size_t i) { return words_[i]; }
  void clear() {
    index_.clear();
    pairs_.clear();
    words_.clear();
  }

 private:
  PairMap<uint32_t> index_{1024};  // pair -> position + 1
  std::vector<uint64_t> pairs_;
  std::vector<std::vector<uint32_t>> words_;
};

class Trainer {
 public:
  explicit Trainer(const BpeTrainOptions& o) : options_(o) {}

  BpeVocabulary run(const WordCounts& counts) {
    add_alphabet();
    load_words(counts);
    count_pairs();
    merge_until_done();
    return result();
  }

 private:
  uint32_t id_of(const std::string& token) {
    auto [it, added] = id_.emplace(token, static_cast<uint32_t>(tokens_.size()));
    if (added) tokens_.push_back(token);
    return it->second;
  }

  void add_alphabet() {
    for (const auto& s : options_.special_tokens) id_of(s);
    for (uint8_t b : bytes_in_codepoint_order()) byte_id_[b] = id_of(byte_level_char(b));
  }

  void load_words(const WordCounts& counts) {
    counts.for_each([&](std::string_view word, int64_t n) {
      if (word.size() < 2) return;  // a single byte has no pair
      words_.begin.push_back(words_.symbols.size());
      words_.length.push_back(static_cast<uint32_t>(word.size()));
      words_.count.push_back(n);
      for (unsigned char c : word) words_.symbols.push_back(byte_id_[c]);
    });
  }

  void count_pairs() {
    PairMap<uint32_t> slot(1 << 16);  // pair -> position + 1 in `found`
    std::vector<Candidate> found;
    for (uint32_t w = 0; w < words_.count.size(); ++w) {
      const uint32_t* s = &words_.symbols[words_.begin[w]];
      for (uint32_t i = 0; i + 1 < words_.length[w]; ++i) {
        const uint64_t p = pair_key(s[i], s[i + 1]);
        pair_count_[p] += words_.count[w];
        uint32_t& k = slot[p];
        if (k == 0) {
          found.push_back({0, p, {}});
          k = static_cast<uint32_t>(found.size());
        }
        auto& ws = found[k - 1].words;
        if (ws.empty() || ws.back() != w) ws.push_back(w);
      }
    }
    for (auto& c : found) {
      c.count = *pair_count_.find(c.pair);
      if (c.count > 0) queue_.push(std::move(c));
    }
  }

  void change(uint32_t a, uint32_t b, int delta, uint32_t word) {
    const uint64_t p = pair_key(a, b);
    pair_count_[p] += delta * words_.count[word];
    if (delta > 0) grown_.add(p, word);
  }

  // Merges every (a, b) in `word` left to right, recording how the neighbouring pairs change.
  void merge_in_word(uint32_t a, uint32_t b, uint32_t merged, uint32_t word) {
    uint32_t* s = &words_.symbols[words_.begin[word]];
    const uint32_t n = words_.length[word];
    uint32_t out = 0;
    for (uint32_t in = 0; in < n;) {
      if (s[in] == a && in + 1 < n && s[in + 1] == b) {
        if (out > 0) {
          change(s[out - 1], a, -1, word);
          change(s[out - 1], merged, +1, word);
        }
        if (in + 2 < n) {
          change(b, s[in + 2], -1, word);
          change(merged, s[in + 2], +1, word);
        }
        s[out++] = merged;
        in += 2;
      } else {
        s[out++] = s[in++];
      }
    }
    words_.length[word] = out;
  }

  void merge_until_done() {
    while (static_cast<int64_t>(tokens_.size()) < options_.vocab_size && !queue_.empty()) {
      Candidate top = queue_.pop();
      const int64_t current = *pair_count_.find(top.pair);
      if (top.count != current) {
        top.count = current;
        queue_.push(std::move(top));
        continue;
      }
      if (top.count < 1 || top.count < options_.min_frequency) break;
      const auto a = static_cast<uint32_t>(top.pair >> 32);
      const auto b = static_cast<uint32_t>(top.pair);
      const uint32_t merged = id_of(tokens_[a] + tokens_[b]);
      merges_.push_back(top.pair);
      for (uint32_t w : top.words) merge_in_word(a, b, merged, w);
      for (size_t i = 0; i < grown_.size(); ++i) {
        const int64_t count = *pair_count_.find(grown_.pair(i));
        if (count > 0) queue_.push({count, grown_.pair(i), std::move(grown_.words(i))});
      }
      grown_.clear();
    }
  }

  BpeVocabulary result() const {
    // A pair merged twice (its words split over two queue entries) keeps its later rank, as
    // `tokenizers` stores merges in a map from pair to rank.
    PairMap<size_t> last(merges_.size() + 1);
    for (size_t i = 0; i < merges_.size(); ++i) last[merges_[i]] = i;
    BpeVocabulary v;
    v.tokens = tokens_;
    for (size_t i = 0; i < merges_.size(); ++i)
      if (*last.find(merges_[i]) == i)
        v.merges.emplace_back(tokens_[merges_[i] >> 32], tokens_[merges_[i] & 0xFFFFFFFFu]);
    return v;
  }

  const BpeTrainOptions& options_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, uint32_t> id_;
  uint32_t byte_id_[256] = {};
  Words words_;
  PairMap<int64_t> pair_count_{1 << 16};
  MergeQueue queue_;
  GrownPairs grown_;
  std::vector<uint64_t> merges_;
};

}  // namespace

BpeVocabulary train_bpe(const WordCounts& words, const BpeTrainOptions& options) {
  return Trainer(options).run(words);
}

BpeVocabulary train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& options) {
  return train_bpe(count_words(files, options.threads), options);
}

}  // namespace stoch::data
