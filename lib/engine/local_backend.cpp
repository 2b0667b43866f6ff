#include "engine/local_backend.h"

#include <algorithm>
#include <numeric>

#include "attribution/gradient.h"
#include "model/generate.h"
#include "util/error.h"
#include "util/memory.h"

namespace pizza {

using PGeneration = perturbation::Generation;
using perturbation::GeneratedToken;
using perturbation::Prompt;

bool starts_with_boundary_marker(std::string_view piece) {
  return piece.starts_with("\xE2\x96\x81") || piece.starts_with("\xC4\xA0");
}

LocalBackend::LocalBackend(const LanguageModel& lm, std::vector<int64_t> reference, LocalBackendOptions opts)
    : lm_(lm), reference_(std::move(reference)), opts_(opts) {
  if (opts_.max_batch <= 0) throw UsageError("--max-batch must be positive, got " + std::to_string(opts_.max_batch));
  if (opts_.top_k <= 0) throw UsageError("--top-logprobs must be positive, got " + std::to_string(opts_.top_k));
}

int64_t estimate_forward_memory(const ModelConfig& cfg, torch::Dtype dtype, int64_t tokens, int64_t logit_rows) {
  const int64_t b = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t c = dtype == torch::kFloat64 ? 8 : 4;
  const int64_t T = std::max<int64_t>(1, tokens);
  const int64_t I = std::max(cfg.intermediate_size, cfg.num_experts * cfg.expert_intermediate_size);
  const int64_t kv = 2 * cfg.num_layers * cfg.num_kv_heads * T * cfg.head_dim * b;
  const int64_t attention = 3 * cfg.num_heads * T * T * c;
  const int64_t rows = T * b * (4 * cfg.hidden_size + (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim + 3 * I);
  const int64_t logits = logit_rows * cfg.vocab_size * (b + 16);
  return kv + std::max(attention, rows) + logits;
}

size_t LocalBackend::batch_size(int64_t tokens, int64_t logit_rows) {
  const auto& model = lm_.model();
  if (weights_ < 0) weights_ = opts_.resident_bytes > 0 ? opts_.resident_bytes : weight_bytes(model);
  const int64_t per = estimate_forward_memory(model.config(), model.dtype(), tokens, logit_rows);
  // The reference prompt's cache (one row) stays while batches run.
  const int64_t fixed = weights_ + estimate_forward_memory(model.config(), model.dtype(), static_cast<int64_t>(reference_.size()), 0);
  int64_t B = opts_.max_batch;
  if (opts_.max_memory > 0) {
    if (fixed + per > opts_.max_memory)
      throw InputError("one perturbed prompt of " + std::to_string(tokens) + " tokens needs ~" + format_bytes(fixed + per) +
                       " (" + format_bytes(weights_) + (opts_.resident_bytes > 0 ? " resident already, " : " of weights, ") + format_bytes(fixed + per - weights_) +
                       " of activations) but --max-memory allows " + format_bytes(opts_.max_memory) +
                       ": use a shorter prompt, fewer output tokens or a larger --max-memory");
    B = std::clamp<int64_t>((opts_.max_memory - fixed) / per, 1, B);
  }
  if (B > rows_per_pass_) {
    rows_per_pass_ = B;
    estimated_bytes_ = fixed + B * per;
  }
  return static_cast<size_t>(B);
}

std::string LocalBackend::describe() const { return "local:" + lm_.path().string(); }

std::vector<int64_t> LocalBackend::ids_of(const Prompt& p) const {
  std::vector<int64_t> ids;
  if (p.token_ids) {
    ids.assign(p.token_ids->begin(), p.token_ids->end());
  } else {
    EncodeOptions eo;
    eo.parse_special = opts_.parse_special;
    for (auto id : lm_.tokenizer().encode(p.text, eo).ids()) ids.push_back(id);
  }
  if (ids.empty())
    throw InputError("a perturbed prompt has no tokens left (and the tokenizer adds no BOS): nothing to condition on");
  return ids;
}

std::vector<PGeneration> LocalBackend::complete(std::span<const Prompt> prompts) {
  std::vector<PGeneration> out;
  std::vector<std::vector<int64_t>> ids;
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.attention_mask)
      throw UsageError("--strategy mask scores the original output teacher-forced; it cannot generate (use --scoring teacher-forced)");
    ids.push_back(ids_of(p));
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.back().size()));
  }
  const auto B = ids.empty() ? size_t{1} : batch_size(longest + opts_.max_new_tokens, 1);
  for (size_t start = 0; start < ids.size(); start += B) {
    std::vector<std::vector<int64_t>> batch(ids.begin() + static_cast<std::ptrdiff_t>(start),
                                            ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), start + B)));
    for (auto& g : complete_batch(batch)) out.push_back(std::move(g));
  }
  return out;
}

// Greedy decoding as greedy_generate does it (left-padded batch, KV cache), keeping the top-k
// log-probabilities of every step, which the free-running metrics need.
std::vector<PGeneration> LocalBackend::complete_batch(const std::vector<std::vector<int64_t>>& prompts) {
  torch::NoGradGuard ng;
  const auto& model = lm_.model();
  const auto& tok = lm_.tokenizer();
  auto stops = lm_.stop_ids();
  stops.insert(stops.end(), opts_.stop_ids.begin(), opts_.stop_ids.end());
  const auto n = prompts.size();
  std::vector<PGeneration> out(n);
  std::vector<std::vector<int64_t>> generated(n);
  std::vector<bool> done(n, false);
  auto [ids, mask] = left_pad(prompts);
  const auto dev = model.device();
  KVCache cache = model.new_cache(ids.size(0), ids.size(1) + opts_.max_new_tokens);
  torch::Tensor step_ids = ids.to(dev), step_mask = mask.to(dev);
  const int64_t k = std::min<int64_t>(opts_.top_k, model.config().vocab_size);
  for (int64_t step = 0; step < opts_.max_new_tokens; ++step) {
    ForwardOptions fo;
    fo.attention_mask = step_mask;
    fo.cache = &cache;
    fo.last_only = true;
    auto logits = model.forward(model.embed(step_ids), fo).squeeze(1);  // [B,V]
    ++forward_passes_;
    auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
    auto [top_v, top_i] = lp.topk(k, -1);
    top_v = top_v.to(torch::kCPU);
    top_i = top_i.to(torch::kCPU);
    auto va = top_v.accessor<double, 2>();
    auto ia = top_i.accessor<int64_t, 2>();
    bool all_done = true;
    for (size_t b = 0; b < n; ++b) {
      if (done[b]) continue;
      const auto row = static_cast<int64_t>(b);
      auto text_of = [&](int64_t id) {
        const auto i32 = static_cast<int32_t>(id);
        return tok.is_special(i32) ? tok.piece(i32) : tok.token_bytes(i32);
      };
      GeneratedToken g;
      g.id = static_cast<int32_t>(ia[row][0]);
      g.token = text_of(g.id);
      g.logprob = va[row][0];
      for (int64_t j = 0; j < k; ++j) g.top.push_back({text_of(ia[row][j]), static_cast<int32_t>(ia[row][j]), va[row][j]});
      generated[b].push_back(g.id);
      out[b].tokens.push_back(std::move(g));
      if (std::find(stops.begin(), stops.end(), generated[b].back()) != stops.end()) done[b] = true;
      all_done = all_done && done[b];
    }
    if (all_done) break;
    step_ids = top_i.select(1, 0).view({-1, 1}).to(dev);
    step_mask = torch::ones({static_cast<int64_t>(n), 1}, torch::TensorOptions().dtype(torch::kBool).device(dev));
  }
  for (size_t b = 0; b < n; ++b) out[b].text = decode_continuation(tok, prompts[b], generated[b]);
  return out;
}

std::vector<std::vector<double>> LocalBackend::score(std::span<const Prompt> prompts, const PGeneration& output) {
  std::vector<std::vector<double>> lps;
  for (auto& c : score_tokens(prompts, output, {})) lps.push_back(std::move(c.output));
  return lps;
}

std::vector<LocalBackend::ContrastLogprobs> LocalBackend::score_contrast(std::span<const Prompt> prompts, const PGeneration& output,
                                                                         std::span<const int32_t> foil) {
  if (foil.size() != output.tokens.size())
    throw InputError("the foil has " + std::to_string(foil.size()) + " tokens and the output " +
                     std::to_string(output.tokens.size()) + ": one foil token per output token is needed");
  const auto V = lm_.config().vocab_size;
  for (auto id : foil)
    if (id < 0 || id >= V) throw InputError("foil token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(V) + " tokens)");
  return score_tokens(prompts, output, foil);
}

std::vector<LocalBackend::ContrastLogprobs> LocalBackend::score_tokens(std::span<const Prompt> prompts, const PGeneration& output,
                                                                       std::span<const int32_t> foil) {
  torch::NoGradGuard ng;
  const auto& model = lm_.model();
  const auto dev = model.device();
  std::vector<int64_t> out_ids;
  for (const auto& t : output.tokens) {
    if (t.id < 0) throw InputError("the local backend scores outputs by token id; output token '" + t.token + "' has none");
    out_ids.push_back(t.id);
  }
  const auto O = static_cast<int64_t>(out_ids.size());
  if (O == 0) throw InputError("there is no output token to score");

  // Each prompt shares its first `shared` tokens with the reference; at least one prompt
  // token is recomputed so the logits predicting the first output token exist.
  // --strategy mask: a masked token stays (its position too) but no later token attends to it;
  // the shared prefix ends before the first masked token.
  struct Item {
    size_t index;
    std::vector<int64_t> ids;
    int64_t shared;
    std::vector<bool> keep;  // empty: every token attended
  };
  std::vector<Item> items;
  bool any_mask = false;
  for (size_t i = 0; i < prompts.size(); ++i) {
    Item it{i, ids_of(prompts[i]), 0, {}};
    if (const auto& m = prompts[i].attention_mask) {
      if (m->size() != it.ids.size()) throw std::logic_error("attention mask and token ids differ in length");
      it.keep = *m;
      any_mask = true;
    }
    const auto limit = std::min(it.ids.size() - 1, reference_.size());
    auto kept = [&](size_t j) { return it.keep.empty() || it.keep[j]; };
    while (static_cast<size_t>(it.shared) < limit && it.ids[static_cast<size_t>(it.shared)] == reference_[static_cast<size_t>(it.shared)] &&
           kept(static_cast<size_t>(it.shared)))
      ++it.shared;
    items.push_back(std::move(it));
  }
  // Batches of similar shared-prefix length waste the least recomputation.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.shared > b.shared; });

  std::vector<ContrastLogprobs> result(prompts.size());
  torch::Tensor foil_index;  // [1, O, 1]
  if (!foil.empty())
    foil_index = torch::tensor(std::vector<int64_t>(foil.begin(), foil.end()), torch::kLong).to(dev).view({1, O, 1});
  int64_t longest = 0;
  for (const auto& it : items) longest = std::max<int64_t>(longest, static_cast<int64_t>(it.ids.size()) + O);
  const auto B = items.empty() ? size_t{1} : batch_size(longest, O);
  // After the budget check, so that a prompt that cannot fit fails before any forward.
  if (reference_cache_.length() == 0 && !reference_.empty()) {
    reference_cache_ = model.new_cache();
    ForwardOptions fo;
    fo.cache = &reference_cache_;
    fo.last_only = true;
    model.forward(model.embed(torch::tensor(reference_, torch::kLong).view({1, -1})), fo);
    ++forward_passes_;
  }
  for (size_t start = 0; start < items.size(); start += B) {
    const std::span<const Item> batch(items.data() + start, std::min(B, items.size() - start));
    const auto rows = static_cast<int64_t>(batch.size());
    const int64_t L = batch.back().shared;  // smallest in the batch (sorted descending)
    // Suffix = prompt tokens after L, then the output tokens but the last. Right padding:
    // causal attention keeps real tokens from seeing the pads after them, and the slots of
    // real tokens stay contiguous (sliding windows count slots).
    int64_t T = 0;
    for (const auto& it : batch) T = std::max<int64_t>(T, static_cast<int64_t>(it.ids.size()) - L + O - 1);
    auto ids = torch::zeros({rows, T}, torch::kLong);
    auto pos = torch::zeros({rows, O}, torch::kLong);  // where each output token is predicted
    auto keep = torch::ones({rows, T}, torch::kBool);
    auto ia = ids.accessor<int64_t, 2>();
    auto pa = pos.accessor<int64_t, 2>();
    auto ka = keep.accessor<bool, 2>();
    for (int64_t b = 0; b < rows; ++b) {
      const auto& it = batch[static_cast<size_t>(b)];
      int64_t t = 0;
      for (size_t j = static_cast<size_t>(L); j < it.ids.size(); ++j) {
        if (!it.keep.empty()) ka[b][t] = it.keep[j];
        ia[b][t++] = it.ids[j];
      }
      const int64_t last_prompt = t - 1;
      for (int64_t j = 0; j + 1 < O; ++j) ia[b][t++] = out_ids[static_cast<size_t>(j)];
      for (int64_t j = 0; j < O; ++j) pa[b][j] = last_prompt + j;
    }
    KVCache cache = model.new_cache();
    if (L > 0) {
      for (size_t l = 0; l < reference_cache_.keys.size(); ++l) {
        cache.keys[l] = reference_cache_.keys[l].slice(2, 0, L).expand({rows, -1, -1, -1});
        cache.values[l] = reference_cache_.values[l].slice(2, 0, L).expand({rows, -1, -1, -1});
      }
      cache.key_mask = reference_cache_.key_mask.slice(1, 0, L).expand({rows, L});
    }
    ForwardOptions fo;
    fo.cache = &cache;
    fo.logit_positions = pos;  // the vocabulary projection only where output tokens are predicted
    if (any_mask) {
      // Masked tokens keep their slots: positions are the slots (the default would count only
      // attended tokens, as for padding).
      fo.attention_mask = keep;
      fo.positions = torch::arange(L, L + T, torch::kLong).view({1, T}).expand({rows, T});
    }
    auto logits = model.forward(model.embed(ids), fo);  // [rows, O, V]
    ++forward_passes_;
    auto lp = torch::log_softmax(logits.to(torch::kFloat64), -1);
    auto target = torch::tensor(out_ids, torch::kLong).to(dev).view({1, O, 1}).expand({rows, O, 1});
    auto got = lp.gather(2, target).squeeze(-1).to(torch::kCPU).contiguous();
    torch::Tensor got_foil;
    if (foil_index.defined()) got_foil = lp.gather(2, foil_index.expand({rows, O, 1})).squeeze(-1).to(torch::kCPU).contiguous();
    for (int64_t b = 0; b < rows; ++b) {
      auto& r = result[batch[static_cast<size_t>(b)].index];
      const double* p = got.data_ptr<double>() + b * O;
      r.output.assign(p, p + O);
      if (got_foil.defined()) {
        const double* f = got_foil.data_ptr<double>() + b * O;
        r.foil.assign(f, f + O);
      }
    }
  }
  return result;
}

LocalEmbeddings::LocalEmbeddings(const Tokenizer& tokenizer, const torch::Tensor& table) : tokenizer_(tokenizer) {
  torch::NoGradGuard ng;
  auto t = table.to(torch::kFloat32);
  normed_ = t / t.norm(2, -1, true).clamp_min(1e-12);
  const auto V = normed_.size(0);
  std::vector<uint8_t> boundary(static_cast<size_t>(V), 0), eligible(static_cast<size_t>(V), 0);
  const auto tv = std::min<int64_t>(V, tokenizer.vocab_size());
  // Text -> id: ordinary pieces first, so " " finds sentencepiece's "▁" rather than the byte
  // fallback token <0x20> that decodes to the same byte.
  std::vector<int32_t> byte_pieces;
  for (int64_t i = 0; i < tv; ++i) {
    const auto id = static_cast<int32_t>(i);
    const auto piece = tokenizer.piece(id);
    boundary[static_cast<size_t>(i)] = starts_with_boundary_marker(piece);
    eligible[static_cast<size_t>(i)] = !tokenizer.is_special(id);
    if (!eligible[static_cast<size_t>(i)]) continue;
    if (byte_fallback_value(piece)) byte_pieces.push_back(id);
    else by_bytes_.try_emplace(tokenizer.token_bytes(id), id);
  }
  for (auto id : byte_pieces) by_bytes_.try_emplace(tokenizer.token_bytes(id), id);
  auto to_mask = [&](const std::vector<uint8_t>& v) {
    return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kLong).to(torch::kBool).to(normed_.device());
  };
  boundary_ = to_mask(boundary);
  eligible_ = to_mask(eligible);
}

std::optional<int32_t> LocalEmbeddings::token_with_bytes(std::string_view bytes) const {
  auto it = by_bytes_.find(std::string(bytes));
  if (it == by_bytes_.end()) return std::nullopt;
  return it->second;
}

torch::Tensor LocalEmbeddings::rows_of(std::span<const int32_t> ids) const {
  std::vector<int64_t> v;
  for (auto id : ids) {
    if (id < 0 || id >= normed_.size(0))
      throw InputError("token id " + std::to_string(id) + " is outside the embedding table (" +
                       std::to_string(normed_.size(0)) + " rows)");
    v.push_back(id);
  }
  return normed_.index_select(0, torch::tensor(v, torch::kLong).to(normed_.device()));
}

int32_t LocalEmbeddings::nth_nearest(int32_t id, int64_t n) const {
  torch::NoGradGuard ng;
  auto sims = torch::mv(normed_, rows_of(std::span(&id, 1))[0]);  // [V]
  // Candidates: real tokens with the same word-boundary status, so a word-initial token is
  // replaced by a word-initial one and words do not merge or split.
  auto allowed = eligible_ & (boundary_ == boundary_[id]);
  const auto count = allowed.sum().item<int64_t>();
  const int64_t k = n >= 0 ? n + 1 : -n;
  if (k > count)
    throw InputError("--nth " + std::to_string(n) + " is beyond the " + std::to_string(count) +
                     " candidate tokens for token " + std::to_string(id) + " ('" + tokenizer_.piece(id) + "')");
  const double inf = std::numeric_limits<double>::infinity();
  // A partial sort: only the k best (or worst) entries are ordered.
  auto keyed = (n >= 0 ? sims : -sims).masked_fill(allowed.logical_not(), -inf);
  return static_cast<int32_t>(std::get<1>(keyed.topk(k)).select(0, k - 1).item<int64_t>());
}

std::vector<double> LocalEmbeddings::cosine(std::span<const int32_t> a, std::span<const int32_t> b) const {
  if (a.empty() || b.empty()) return {};
  torch::NoGradGuard ng;
  auto m = torch::mm(rows_of(a), rows_of(b).t()).to(torch::kFloat64).to(torch::kCPU).contiguous();
  return {m.data_ptr<double>(), m.data_ptr<double>() + m.numel()};
}

}  // namespace pizza
