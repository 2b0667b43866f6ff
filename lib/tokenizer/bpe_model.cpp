#include "tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "util/error.h"

namespace pizza {

void BpeModel::reserve(size_t tokens) {
  bytes_.reserve(tokens);
  pieces_.reserve(tokens);
  present_.reserve(tokens);
  by_bytes_.reserve(tokens);
  by_piece_.reserve(tokens);
  merges_.reserve(tokens);
}

void BpeModel::add_token(int32_t id, std::string bytes, std::string piece) {
  if (id < 0) throw InputError("negative token id " + std::to_string(id));
  auto n = static_cast<size_t>(id) + 1;
  if (bytes_.size() < n) {
    bytes_.resize(n);
    pieces_.resize(n);
    present_.resize(n, 0);
  }
  // The first id wins for duplicated byte strings, so lookups are deterministic.
  by_bytes_.try_emplace(bytes, id);
  by_piece_.try_emplace(piece, id);
  bytes_[id] = std::move(bytes);
  pieces_[id] = std::move(piece);
  present_[id] = 1;
}

void BpeModel::add_merge(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  merges_.insert_or_assign(pair_key(left, right), Merge{rank, merged});
}

void BpeModel::derive_merges_from_ranks() {
  for (int32_t id = 0; id < size(); ++id) {
    std::string_view b = bytes_[id];
    for (size_t k = 1; k < b.size(); ++k) {
      auto left = find(b.substr(0, k));
      if (!left) continue;
      if (auto right = find(b.substr(k)))
        merges_.try_emplace(pair_key(*left, *right), Merge{id, id});
    }
  }
}

void BpeModel::finish(std::string_view origin) {
  origin_ = origin;
  if (char_level_) {
    if (!char_level_->byte_fallback) return;
    for (unsigned b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      auto id = find_piece(name);
      if (!id) {
        throw InputError(std::string(origin) + ": model.byte_fallback is true but the vocabulary has no token " +
                         name + " (byte fallback needs all 256 <0xNN> tokens)");
      }
      byte_ids_[b] = *id;
    }
    return;
  }
  for (unsigned b = 0; b < 256; ++b) {
    const char byte = static_cast<char>(b);
    auto id = find(std::string_view(&byte, 1));
    if (!id) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw InputError(std::string(origin) + ": vocabulary has no token for byte " + hex +
                       ", so it is not a byte-level BPE vocabulary");
    }
    byte_ids_[b] = *id;
  }
}

std::optional<int32_t> BpeModel::find(std::string_view bytes) const {
  auto it = by_bytes_.find(bytes);
  if (it == by_bytes_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::find_piece(std::string_view piece) const {
  auto it = by_piece_.find(piece);
  if (it == by_piece_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<BpeSymbol>& out) const {
  if (bytes.empty()) return;
  if (bytes.size() == 1 && !char_level_) {
    out.push_back({byte_ids_[static_cast<unsigned char>(bytes[0])], 1});
    return;
  }
  if (ignore_merges_) {
    if (auto id = find(bytes)) {
      out.push_back({*id, static_cast<uint32_t>(bytes.size())});
      return;
    }
  }
  bool cacheable = bytes.size() <= kCacheMaxPieceBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(bytes); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t first = out.size();
  merge(bytes, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheMaxEntries) cache_.clear();
    cache_.try_emplace(std::string(bytes), out.begin() + static_cast<ptrdiff_t>(first), out.end());
  }
}

namespace {

// Length of the UTF-8 character whose lead byte is `c` (input is validated UTF-8).
uint32_t utf8_length(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

}  // namespace

// Character-level start as Hugging Face's BPE model builds its word: each character that is a
// token stays one symbol; otherwise its bytes' <0xNN> tokens, or unk.
void BpeModel::initial_symbols(std::string_view bytes, std::vector<BpeSymbol>& out) const {
  if (!char_level_) {
    for (char c : bytes) out.push_back({byte_ids_[static_cast<unsigned char>(c)], 1});
    return;
  }
  std::optional<BpeSymbol> unk;  // pending unknown run (fuse_unk joins neighbours)
  auto flush_unk = [&] {
    if (unk) out.push_back(*unk);
    unk.reset();
  };
  for (size_t i = 0; i < bytes.size();) {
    const uint32_t n = std::min<uint32_t>(utf8_length(static_cast<unsigned char>(bytes[i])),
                                          static_cast<uint32_t>(bytes.size() - i));
    const std::string_view ch = bytes.substr(i, n);
    if (auto id = find(ch)) {
      flush_unk();
      out.push_back({*id, n});
    } else if (char_level_->byte_fallback) {
      flush_unk();
      for (char c : ch) out.push_back({byte_ids_[static_cast<unsigned char>(c)], 1});
    } else if (char_level_->unk) {
      if (unk && char_level_->fuse_unk) {
        unk->len += n;
      } else {
        flush_unk();
        unk = BpeSymbol{*char_level_->unk, n};
      }
    } else {
      throw InputError(origin_ + ": the text contains '" + std::string(ch) +
                       "', which is not in the vocabulary (and the model has neither byte_fallback "
                       "nor unk_token)");
    }
    i += n;
  }
  flush_unk();
}

// Merges with a min-heap of candidate pairs over a linked list of symbols: O(n log n) in the
// piece length instead of the textbook rescan after every merge. The heap orders by (rank,
// position), so among equal ranks the leftmost pair merges first, as in tiktoken and HF.
// Stale candidates (a side already merged into something else) are skipped when popped.
void BpeModel::merge(std::string_view bytes, std::vector<BpeSymbol>& out) const {
  struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour
    uint32_t len;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_id;
    int32_t right_id;
    int32_t merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::vector<BpeSymbol> start;
  initial_symbols(bytes, start);
  const auto n = static_cast<int32_t>(start.size());
  if (n == 0) return;
  std::vector<Symbol> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sym[i] = {start[i].id, start[i].len, i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Candidate> storage;
  storage.reserve(static_cast<size_t>(n));
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(std::greater<>{},
                                                                              std::move(storage));
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    auto it = merges_.find(pair_key(sym[left].id, sym[right].id));
    if (it == merges_.end()) return;
    heap.push({it->second.rank, left, right, sym[left].id, sym[right].id, it->second.merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    Symbol& l = sym[c.left];
    // Merged tokens only grow, so unchanged ids plus adjacency prove the candidate is current.
    if (l.id != c.left_id || l.next != c.right || sym[c.right].id != c.right_id) continue;
    Symbol& r = sym[c.right];
    l.id = c.merged;
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = c.left;
    r.id = -1;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back({sym[i].id, sym[i].len});
}

}  // namespace pizza
