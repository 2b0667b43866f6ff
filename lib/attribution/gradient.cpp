#include "attribution/gradient.h"

#include "util/error.h"

namespace pizza {

namespace {

// One copy of the sequence: row t's prefix, interpolated with weight at alpha.
struct Item {
  int64_t row;
  double alpha, weight;
};

torch::Tensor long_tensor(const std::vector<int64_t>& v, torch::Device dev) {
  return torch::tensor(v, torch::TensorOptions().dtype(torch::kLong)).to(dev);
}

class Engine {
 public:
  Engine(const Transformer& model, const GradientRequest& req) : model_(model), req_(req) {
    P_ = static_cast<int64_t>(req.prompt.size());
    N_ = static_cast<int64_t>(req.outputs.size());
    std::vector<int64_t> seq = req.prompt;
    seq.insert(seq.end(), req.outputs.begin(), req.outputs.end());
    const auto dev = model.device();
    tokens_ = long_tensor(req.outputs, dev);
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
    std::vector<Item> items;
    for (int64_t t = 0; t < N_; ++t)
      for (auto [a, w] : req_.method->points(req_.options)) items.push_back({t, a, w});
    const size_t chunk = req_.algorithm == GradientAlgorithm::reference ? 1 : static_cast<size_t>(std::max<int64_t>(1, req_.max_batch));
    GradientAttribution out;
    for (size_t i = 0; i < items.size(); i += chunk) {
      run_chunk(std::vector<Item>(items.begin() + static_cast<std::ptrdiff_t>(i),
                                  items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + chunk))));
      ++out.passes;
      if (req_.progress) req_.progress(std::min(items.size(), i + chunk), items.size());
    }

    out.scores = torch::zeros({N_, P_ + N_}, torch::kFloat64);
    auto x64 = x_.to(torch::kFloat64), b64 = base_.to(torch::kFloat64);
    for (int64_t t = 0; t < N_; ++t) {
      const auto L = P_ + t;
      auto row = req_.method->reduce(x64.slice(0, 0, L), b64.slice(0, 0, L), acc_[t].slice(0, 0, L), req_.options);
      out.scores[t].slice(0, 0, L).copy_(row.to(torch::kCPU));
    }
    out.target_values = evaluate(x_);
    if (req_.method->uses_baseline) {
      out.baseline_values = evaluate(base_);
      for (int64_t t = 0; t < N_; ++t) {
        const auto i = static_cast<size_t>(t);
        out.completeness_gap.push_back(out.scores[t].sum().item<double>() - (out.target_values[i] - out.baseline_values[i]));
      }
    }
    return out;
  }

 private:
  void run_chunk(const std::vector<Item>& items) {
    int64_t max_row = 0;
    for (const auto& it : items) max_row = std::max(max_row, it.row);
    // Copies are cut to the longest prefix in the chunk; positions beyond a copy's own prefix
    // cannot influence its target (causal attention) and receive exactly zero gradient.
    const int64_t L = P_ + max_row;
    const auto B = static_cast<int64_t>(items.size());
    const auto dev = x_.device();
    std::vector<int64_t> pos(items.size()), rows(items.size());
    auto alphas = torch::empty({B, 1, 1}, torch::TensorOptions().dtype(x_.scalar_type()));
    for (size_t b = 0; b < items.size(); ++b) {
      pos[b] = P_ + items[b].row - 1;
      rows[b] = items[b].row;
      alphas[static_cast<int64_t>(b)].fill_(items[b].alpha);
    }
    auto x = x_.slice(0, 0, L), base = base_.slice(0, 0, L);
    auto embeds = (base.unsqueeze(0) + alphas.to(dev) * (x - base).unsqueeze(0)).detach().requires_grad_(true);
    auto rows_t = long_tensor(rows, dev);
    auto pos_t = long_tensor(pos, dev);
    torch::Tensor values;
    if (req_.target->needs_all_positions) {
      values = req_.target->fn(model_.forward(embeds), pos_t, tokens_.index_select(0, rows_t));
    } else {
      // Logits only where each copy's target is read: [B, 1, V].
      ForwardOptions fo;
      fo.logit_positions = pos_t;
      values = req_.target->fn(model_.forward(embeds, fo), torch::zeros_like(pos_t), tokens_.index_select(0, rows_t));
    }
    auto grad = torch::autograd::grad({values.sum()}, {embeds})[0].to(torch::kFloat64);
    for (size_t b = 0; b < items.size(); ++b) {
      const auto t = items[b].row;
      acc_[t].slice(0, 0, L).add_(grad[static_cast<int64_t>(b)], items[b].weight);
    }
  }

  // Target value of every row with all embeddings taken from `embeds` [P+N, D].
  std::vector<double> evaluate(const torch::Tensor& embeds) const {
    torch::NoGradGuard ng;
    if (N_ == 0) return {};
    auto logits = model_.forward(embeds.slice(0, 0, P_ + N_ - 1).unsqueeze(0));  // [1, L, V]
    auto expanded = logits.expand({N_, logits.size(1), logits.size(2)});
    auto pos = torch::arange(P_ - 1, P_ + N_ - 1, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
    auto v = req_.target->fn(expanded, pos, tokens_).to(torch::kFloat64).to(torch::kCPU);
    return std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
  }

  const Transformer& model_;
  const GradientRequest& req_;
  int64_t P_ = 0, N_ = 0;
  torch::Tensor x_, base_, tokens_, acc_;
};

}  // namespace

GradientAttribution attribute_gradients(const Transformer& model, const GradientRequest& request) {
  if (!request.method || !request.target) throw UsageError("attribute_gradients: method and target are required");
  if (request.prompt.empty())
    throw InputError("the prompt has no tokens (empty text and no BOS): nothing to attribute to");
  if (request.outputs.empty()) throw InputError("no output tokens to attribute");
  if (request.method->uses_baseline && request.options.ig_steps <= 0)
    throw UsageError("--ig-steps must be positive, got " + std::to_string(request.options.ig_steps));
  const auto total = static_cast<int64_t>(request.prompt.size() + request.outputs.size()) - 1;
  if (total > model.config().max_position_embeddings)
    throw InputError("prompt + output is " + std::to_string(total) + " tokens, more than the model's context of " +
                     std::to_string(model.config().max_position_embeddings));
  return Engine(model, request).run();
}

}  // namespace pizza
