#include "attribution/gradient.h"

#include <ATen/VmapMode.h>

#include <future>

#include <unordered_set>

#include "model/model.h"
#include "util/error.h"
#include "util/memory.h"

namespace pizza {

namespace {

torch::Tensor long_tensor(const std::vector<int64_t>& v, torch::Device dev) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kLong)).to(dev);
}

// One level of ATen's vmap (the mechanism behind torch.autograd.grad(is_grads_batched=True)),
// left on every exit path.
class VmapLevel {
 public:
  VmapLevel() : level_(at::impl::VmapMode::increment_nesting()) {}
  ~VmapLevel() { at::impl::VmapMode::decrement_nesting(); }
  VmapLevel(const VmapLevel&) = delete;
  VmapLevel& operator=(const VmapLevel&) = delete;
  int64_t level() const { return level_; }

 private:
  int64_t level_;
};

// K vector-Jacobian products of `values` w.r.t. `input` in one backward pass: grad_outputs
// [K, values...] -> [K, input...]. Each backward operation runs once on K-times larger
// operands (e.g. one [K*T, out] x [out, in] product instead of K small ones), which is what
// makes the batched attribution fast.
torch::Tensor batched_vjp(const torch::Tensor& values, const torch::Tensor& input, const torch::Tensor& grad_outputs,
                          bool retain_graph) {
  VmapLevel vmap;
  auto batched = at::_add_batch_dim(grad_outputs, 0, vmap.level());
  auto g = torch::autograd::grad({values}, {input}, {batched}, retain_graph)[0];
  return at::_remove_batch_dim(g, vmap.level(), grad_outputs.size(0), 0);
}

class Engine {
 public:
  // batch: the fast algorithm's rows per backward x points per forward (--max-batch, or less to
  // fit --max-memory).
  Engine(const Transformer& model, const GradientRequest& req, int64_t batch) : model_(model), req_(req), batch_(batch) {
    P_ = static_cast<int64_t>(req.prompt.size());
    N_ = static_cast<int64_t>(req.outputs.size());
    std::vector<int64_t> seq = req.prompt;
    seq.insert(seq.end(), req.outputs.begin(), req.outputs.end());
    const auto dev = model.device();
    tokens_ = long_tensor(req.outputs, dev);
    if (!req.foils.empty()) foils_ = long_tensor(req.foils, dev);
    {
      torch::NoGradGuard ng;
      x_ = model.embed(long_tensor(seq, dev).view({1, -1}))[0].to(model.dtype());  // [P+N, D]
      if (req.method->uses_baseline && req.options.baseline == Baseline::pad) {
        if (!req.pad_id) throw InputError("--ig-baseline pad: the tokenizer has no pad or unk token; use --ig-baseline zero");
        base_ = model.embed(long_tensor({*req.pad_id}, dev).view({1, 1}))[0].expand_as(x_).contiguous();
      } else {
        base_ = torch::zeros_like(x_);
      }
    }
    acc_ = torch::zeros({N_, P_ + N_, x_.size(1)}, torch::TensorOptions().dtype(torch::kFloat64).device(dev));
  }

  GradientAttribution run() {
    GradientAttribution out;
    if (req_.algorithm == GradientAlgorithm::reference) run_reference(out);
    else run_fast(out);

    out.scores = torch::zeros({N_, P_ + N_}, torch::kFloat64);
    auto x64 = x_.to(torch::kFloat64), b64 = base_.to(torch::kFloat64);
    for (int64_t t = 0; t < N_; ++t) {
      const auto L = P_ + t;
      auto row = req_.method->reduce(x64.slice(0, 0, L), b64.slice(0, 0, L), acc_[t].slice(0, 0, L), req_.options);
      out.scores[t].slice(0, 0, L).copy_(row.to(torch::kCPU));
    }
    // The fast algorithm's forward at alpha = 1 already gave f(x) (saliency, input x gradient).
    out.target_values = target_values_ ? *target_values_ : evaluate(x_);
    if (req_.method->uses_baseline) {
      out.baseline_values = evaluate(base_);
      for (int64_t t = 0; t < N_; ++t) {
        const auto i = static_cast<size_t>(t);
        out.completeness_gap.push_back(out.scores[t].sum().item<double>() - (out.target_values[i] - out.baseline_values[i]));
      }
    }
    if (req_.method->rules != Relevance::gradient) {
      // From the signed relevance, whatever --abs reports.
      for (int64_t t = 0; t < N_; ++t) {
        const auto L = P_ + t;
        const double total = (x64.slice(0, 0, L) * acc_[t].slice(0, 0, L)).sum().item<double>();
        out.conservation_gap.push_back(total - out.target_values[static_cast<size_t>(t)]);
      }
    }
    return out;
  }

 private:
  // PIZZA's structure: one forward and one backward per (row, point), each over the row's own
  // prefix.
  void run_reference(GradientAttribution& out) {
    const auto points = req_.method->points(req_.options);
    const size_t total = static_cast<size_t>(N_) * points.size();
    for (int64_t t = 0; t < N_; ++t) {
      for (auto [a, w] : points) {
        run_row(t, a, w);
        ++out.passes;
        if (req_.progress) req_.progress(out.passes, total);  // one (row, point) per pass
      }
    }
  }

  // One forward over the whole sequence per group of points (all rows share it: causal
  // attention means row t's target only sees positions before P + t), then vectorised
  // backward passes, each yielding up to --max-batch rows' gradients at once (on the CPU
  // split across threads, for_row_ranges).
  void run_fast(GradientAttribution& out) {
    const auto points = req_.method->points(req_.options);
    const int64_t mb = std::max<int64_t>(1, batch_);
    const int64_t R = std::min<int64_t>(N_, mb);                  // rows per backward
    const int64_t A = std::max<int64_t>(1, mb / R);              // points per forward
    const auto npoints = static_cast<int64_t>(points.size());
    const size_t total = static_cast<size_t>(N_ * npoints);      // (row, point) gradients
    size_t done = 0;
    const int64_t L = P_ + N_ - 1;
    const auto dev = x_.device();
    auto x = x_.slice(0, 0, L), base = base_.slice(0, 0, L);
    for (int64_t a0 = 0; a0 < npoints; a0 += A) {
      const int64_t Ak = std::min(A, npoints - a0);
      std::vector<double> alpha, weight;
      for (int64_t a = a0; a < a0 + Ak; ++a) {
        alpha.push_back(points[static_cast<size_t>(a)].first);
        weight.push_back(points[static_cast<size_t>(a)].second);
      }
      auto alphas = torch::tensor(alpha, torch::kFloat64).to(x_.scalar_type()).to(dev).view({Ak, 1, 1});
      auto embeds = (base.unsqueeze(0) + alphas * (x - base).unsqueeze(0)).detach().requires_grad_(true);  // [Ak, L, D]
      auto [out_t, seed] = backward_seed(embeds, alpha);  // [Ak, N(, D)]
      auto w = torch::tensor(weight, torch::kFloat64).to(dev).view({1, Ak, 1, 1});
      for (int64_t r0 = 0; r0 < N_; r0 += R) {
        const int64_t K = std::min(R, N_ - r0);
        for_row_ranges(r0, K, [&](int64_t q0, int64_t Q) {
          // Backward k differentiates row q0 + k (at every point): its seed, zero elsewhere.
          auto onehot = torch::zeros({Q, Ak, N_}, seed.options());
          onehot.narrow(2, q0, Q).diagonal(0, 0, 2).fill_(1);  // [k, a, q0 + k] = 1
          auto seeds = seed.dim() == 3 ? onehot.unsqueeze(-1) * seed.unsqueeze(0) : onehot;
          auto g = batched_vjp(out_t, embeds, seeds, /*retain_graph=*/true);  // [Q, Ak, L, D]
          acc_.narrow(0, q0, Q).narrow(1, 0, L).add_((g.to(torch::kFloat64) * w).sum(1));
        });
        ++out.passes;
        done += static_cast<size_t>(K * Ak);
        if (req_.progress) req_.progress(done, total);
      }
    }
  }

  // Runs fn(first row, rows) over [r0, r0 + K): in one piece, or on the CPU with several
  // threads split into that many concurrent backward passes over the shared forward graph,
  // each with single-threaded kernels. Rows are independent, so this parallelises the whole
  // pass (its elementwise work and per-operation overhead too), where the BLAS's own
  // threading only splits each matrix product and synchronises after every one.
  template <class Fn>
  void for_row_ranges(int64_t r0, int64_t K, const Fn& fn) const {
    const int64_t W = x_.device().is_cpu() ? std::min<int64_t>(std::max(1, req_.threads), K) : 1;
    if (W == 1) {
      fn(r0, K);
      return;
    }
    KernelThreads serial(1);  // the workers below start with single-threaded libtorch pools
    auto part = [&](int64_t i) {  // worker i's rows
      const int64_t a = r0 + K * i / W, b = r0 + K * (i + 1) / W;
      fn(a, b - a);
    };
    std::vector<std::future<void>> workers;
    for (int64_t i = 1; i < W; ++i) workers.push_back(std::async(std::launch::async, part, i));
    part(0);  // this thread's share
    for (auto& w : workers) w.get();  // rethrows a worker's exception
  }

  // Where the vectorised backward starts, and its per-row seed. Targets that read one position
  // per row: the final hidden state h[a, r] at row r's position, seeded with d target / d h
  // (one ordinary backward through the vocabulary projection and the target for all rows at
  // once: row r's target depends on h[a, r] alone). Targets that read every position
  // (pizza-legacy): the targets themselves [A, N], seeded with 1. Also records f(x) when a
  // point is alpha = 1 (saliency, input x gradient), which saves a forward later.
  std::pair<torch::Tensor, torch::Tensor> backward_seed(const torch::Tensor& embeds, const std::vector<double>& alpha) {
    const auto A = embeds.size(0);
    const auto dev = embeds.device();
    auto first = torch::arange(P_ - 1, P_ + N_ - 1, torch::TensorOptions().dtype(torch::kLong).device(dev));
    auto tokens = tokens_.repeat({A});
    auto foils = foils_.defined() ? foils_.repeat({A}) : foils_;
    auto record = [&](const torch::Tensor& values) {  // [A, N]
      for (int64_t a = 0; a < A; ++a) {
        if (alpha[static_cast<size_t>(a)] != 1.0) continue;
        auto v = values[a].detach().to(torch::kFloat64).to(torch::kCPU).contiguous();
        target_values_.emplace(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
      }
    };
    ForwardOptions fo;
    fo.relevance = req_.method->rules;
    if (req_.target->needs_all_positions) {
      // Every row needs the logits of its whole prefix: one (broadcast) copy per row.
      auto logits = model_.forward(embeds, fo);  // [A, L, V]
      auto per_row = logits.unsqueeze(1).expand({A, N_, logits.size(1), logits.size(2)}).reshape({A * N_, logits.size(1), logits.size(2)});
      auto values = target(per_row, first.repeat({A}), tokens, foils).view({A, N_});
      record(values);
      return {values, torch::ones_like(values)};
    }
    fo.logit_positions = first.view({1, N_}).expand({A, N_});
    fo.final_hidden_only = true;
    auto h = model_.forward(embeds, fo);  // [A, N, D]
    auto leaf = h.detach().requires_grad_(true);
    auto logits = model_.project(leaf);   // [A, N, V]
    auto zeros = torch::zeros({A * N_}, torch::TensorOptions().dtype(torch::kLong).device(dev));
    auto values = target(logits.reshape({A * N_, 1, logits.size(2)}), zeros, tokens, foils).view({A, N_});
    record(values);
    auto seed = torch::autograd::grad({values.sum()}, {leaf})[0];  // [A, N, D]
    return {h, seed};
  }

  // One forward and backward over row t's own prefix, the embeddings interpolated at `alpha`;
  // the gradient is accumulated with `weight`.
  void run_row(int64_t t, double alpha, double weight) {
    const int64_t L = P_ + t;
    auto x = x_.slice(0, 0, L), base = base_.slice(0, 0, L);
    auto embeds = (base + alpha * (x - base)).unsqueeze(0).detach().requires_grad_(true);  // [1, L, D]
    auto pos = long_tensor({L - 1}, x_.device());
    auto token = tokens_.slice(0, t, t + 1);
    auto foil = foils_.defined() ? foils_.slice(0, t, t + 1) : foils_;
    torch::Tensor value;
    ForwardOptions fo;
    fo.relevance = req_.method->rules;
    if (req_.target->needs_all_positions) {
      value = target(model_.forward(embeds, fo), pos, token, foil);
    } else {
      fo.logit_positions = pos;  // logits only where the target is read: [1, 1, V]
      value = target(model_.forward(embeds, fo), torch::zeros_like(pos), token, foil);
    }
    auto grad = torch::autograd::grad({value.sum()}, {embeds})[0].to(torch::kFloat64);
    acc_[t].slice(0, 0, L).add_(grad[0], weight);
  }

  // The explained scalar: the target of the token, minus the target of the foil at the same
  // position when there is one (undefined `foils`: none).
  torch::Tensor target(const torch::Tensor& logits, const torch::Tensor& pos, const torch::Tensor& tokens,
                       const torch::Tensor& foils) const {
    auto v = req_.target->fn(logits, pos, tokens);
    return foils.defined() ? v - req_.target->fn(logits, pos, foils) : v;
  }

  // Target value of every row with all embeddings taken from `embeds` [P+N, D].
  std::vector<double> evaluate(const torch::Tensor& embeds) const {
    torch::NoGradGuard ng;
    if (N_ == 0) return {};
    auto logits = model_.forward(embeds.slice(0, 0, P_ + N_ - 1).unsqueeze(0));  // [1, L, V]
    auto expanded = logits.expand({N_, logits.size(1), logits.size(2)});
    auto pos = torch::arange(P_ - 1, P_ + N_ - 1, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
    auto v = target(expanded, pos, tokens_, foils_).to(torch::kFloat64).to(torch::kCPU);
    return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  }

  const Transformer& model_;
  const GradientRequest& req_;
  int64_t batch_ = 1;
  int64_t P_ = 0, N_ = 0;
  torch::Tensor x_, base_, tokens_, foils_, acc_;  // foils_ undefined: no contrast
  std::optional<std::vector<double>> target_values_;  // f(x) per row, when a pass computed it
};

}  // namespace

GradientMemory estimate_gradient_memory(const ModelConfig& cfg, torch::Dtype dtype, int64_t prompt, int64_t outputs) {
  const int64_t b = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t c = dtype == torch::kFloat64 ? 8 : 4;  // the softmax's dtype
  const int64_t L = std::max<int64_t>(1, prompt + outputs - 1), S = prompt + outputs;
  const int64_t D = cfg.hidden_size, H = cfg.num_heads, G = cfg.num_kv_heads, hd = cfg.head_dim;
  const int64_t V = cfg.vocab_size, layers = cfg.num_layers;
  // Expert layers run every expert on every token here (transformer.cpp's SparseMoE): count the
  // experts' intermediate activations together.
  const int64_t I = std::max(cfg.intermediate_size, cfg.num_experts * cfg.expert_intermediate_size);
  const int64_t probs = H * L * L;
  GradientMemory m;
  // Per point: what one layer's forward saves for the backward, times the layers, plus the
  // largest layer's transients (the raw, scaled and masked scores, the probabilities) and the
  // target's logits at the N predicting positions with their log-softmax.
  const int64_t saved_rows = L * b * (4 * D + 2 * (H + 2 * G) * hd + 3 * I);
  m.per_point = layers * saved_rows + 3 * probs * c + outputs * V * (b + 2 * c) + 2 * L * D * b;
  // Per backward pass and point: one layer's recomputed probabilities (in the compute dtype too
  // when it differs) and the scores they come from.
  m.per_pass = probs * (3 * c + (b != c ? b : 0));
  // Per (row, point) of a backward: the softmax backward's transients (dP, dP * P, dP - <dP, P>,
  // P * (...); with a compute dtype other than the softmax's also dP's conversion and dS's), the
  // gradients of one layer's activations, and the row's float64 gradient being accumulated.
  m.per_row = probs * (4 * c + (b != c ? 2 * b : 0)) + L * c * (4 * D + 2 * (H + 2 * G) * hd + 3 * I) + L * D * (b + 16);
  // The float64 accumulators [N, P+N, D], the embeddings and baseline (and their float64
  // copies), the logits [L, V] of the forward that evaluates the targets.
  m.fixed = outputs * S * D * 8 + S * D * (2 * b + 16) + L * V * (b + c);
  return m;
}

int64_t weight_bytes(const Transformer& model) {
  std::unordered_set<const void*> seen;
  int64_t total = 0;
  auto add = [&](const torch::Tensor& t) {
    if (!t.defined() || !seen.insert(t.storage().data()).second) return;
    total += static_cast<int64_t>(t.storage().nbytes());
  };
  for (const auto& p : model.parameters()) add(p);
  for (const auto& p : model.buffers()) add(p);
  add(model.embedding_table());
  return total;
}

namespace {

struct BatchPlan {
  int64_t batch = 1, rows_per_pass = 1, estimate = 0;
};

// How many (row, point) gradients one backward takes: --max-batch, lowered until the estimate
// fits --max-memory; InputError when one row does not.
BatchPlan plan_batches(const Transformer& model, const GradientRequest& request) {
  const auto total = static_cast<int64_t>(request.prompt.size() + request.outputs.size()) - 1;
  const auto N = static_cast<int64_t>(request.outputs.size());
  const auto npoints = static_cast<int64_t>(request.method->points(request.options).size());
  const auto mem = estimate_gradient_memory(model.config(), model.dtype(), static_cast<int64_t>(request.prompt.size()), N);
  const int64_t weights = request.resident_bytes > 0 ? request.resident_bytes : weight_bytes(model);
  const bool fast = request.algorithm == GradientAlgorithm::fast;
  // Rows per backward and points per forward at --max-batch mb, as run_fast splits them.
  auto shape = [&](int64_t mb) {
    const int64_t R = std::min(N, mb);
    return std::pair{R, std::min(npoints, std::max<int64_t>(1, mb / R))};
  };
  auto estimate = [&](int64_t mb) {
    const auto [R, A] = shape(mb);
    // for_row_ranges: on the CPU up to --threads concurrent passes, each recomputing the
    // probabilities of its layer.
    const int64_t passes = fast && model.device().is_cpu() ? std::clamp<int64_t>(request.threads, 1, R) : 1;
    return weights + mem.total(R, A, passes);
  };
  int64_t batch = fast ? std::clamp<int64_t>(request.max_batch, 1, std::max<int64_t>(1, N * npoints)) : 1;
  while (request.max_memory > 0 && batch > 1 && estimate(batch) > request.max_memory) --batch;
  if (request.max_memory > 0 && estimate(batch) > request.max_memory) {
    const int64_t need = estimate(1);
    throw InputError("one row of " + request.method->name + " over " + std::to_string(total) + " tokens needs ~" +
                     format_bytes(need) + " (" + format_bytes(weights) +
                     (request.resident_bytes > 0 ? " resident already, " : " of weights, ") + format_bytes(need - weights) +
                     " of activations) but --max-memory allows " + format_bytes(request.max_memory) +
                     ": use a shorter prompt, fewer output tokens or a larger --max-memory");
  }
  return {batch, fast ? shape(batch).first * shape(batch).second : 1, estimate(batch)};
}

}  // namespace

void check_gradient_memory(const Transformer& model, const GradientRequest& request) {
  if (request.method && !request.prompt.empty() && !request.outputs.empty()) plan_batches(model, request);
}

GradientAttribution attribute_gradients(const Transformer& model, const GradientRequest& request) {
  if (!request.method || !request.target) throw UsageError("attribute_gradients: method and target are required");
  if (request.prompt.empty())
    throw InputError("the prompt has no tokens (empty text and no BOS): nothing to attribute to");
  if (request.outputs.empty()) throw InputError("no output tokens to attribute");
  if (!request.foils.empty() && request.foils.size() != request.outputs.size())
    throw InputError("the foil has " + std::to_string(request.foils.size()) + " tokens and the explained output " +
                     std::to_string(request.outputs.size()) + ": a contrastive target needs one foil token per output token");
  if (!request.foils.empty() && request.target->needs_all_positions)
    throw UsageError("--target " + request.target->name + " has no contrastive form; use prob, logprob or logit with --contrast-text");
  if (request.method->uses_baseline && request.options.ig_steps <= 0)
    throw UsageError("--ig-steps must be positive, got " + std::to_string(request.options.ig_steps));
  const auto total = static_cast<int64_t>(request.prompt.size() + request.outputs.size()) - 1;
  if (total > model.config().max_position_embeddings)
    throw InputError("prompt + output is " + std::to_string(total) + " tokens, more than the model's context of " +
                     std::to_string(model.config().max_position_embeddings));
  const auto plan = plan_batches(model, request);
  auto out = Engine(model, request, plan.batch).run();
  out.rows_per_pass = plan.rows_per_pass;
  out.estimated_bytes = plan.estimate;
  return out;
}

}  // namespace pizza
