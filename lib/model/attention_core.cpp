#include "model/attention_core.h"

#include "model/vmap_physical.h"

namespace pizza {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Forward values, plus what the backward needs.
struct CoreForward {
  torch::Tensor out;     // [B, H, T, hd]
  torch::Tensor probs;   // softmax in float32/64, [B, G, R, T, S]
  torch::Tensor probs_c; // the same in the compute dtype, [B, G, R*T, S] (what multiplies v)
  torch::Tensor capped;  // tanh(scores / cap) when soft-capped, [B, G, R*T, S]
};

// Query heads grouped by the kv head they read: [B, H, T, hd] -> [B, G, R*T, hd], so each kv
// head is one matrix product with all its query heads' rows (no copies of k and v per head).
torch::Tensor group_queries(const torch::Tensor& q, int64_t groups) {
  return q.reshape({q.size(0), groups, -1, q.size(3)});
}

// output false: the probabilities only (the backward's recomputation).
CoreForward core_forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                         const torch::Tensor& mask, double scale, std::optional<double> softcap, bool output = true) {
  const auto B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3), G = k.size(1), S = k.size(2);
  CoreForward f;
  auto scores = torch::matmul(group_queries(q, G), k.transpose(2, 3)) * scale;  // [B, G, R*T, S]
  if (softcap) {
    f.capped = torch::tanh(scores / *softcap);
    scores = f.capped * *softcap;
  }
  scores = scores.view({B, G, H / G, T, S}) + mask.unsqueeze(1);
  const auto compute = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  f.probs = torch::softmax(scores, -1, compute);
  f.probs_c = f.probs.to(q.scalar_type()).view({B, G, -1, S});
  if (output) f.out = torch::matmul(f.probs_c, v).view({B, H, T, hd});
  return f;
}

struct AttentionCore : torch::autograd::Function<AttentionCore> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask, double scale,
                               std::optional<double> softcap, Relevance rules) {
    auto f = core_forward(q, k, v, mask, scale, softcap);
    // The probabilities are not kept: [B, H, T, S] per layer, they would make the forward's
    // graph grow with the square of the length (at 2048 tokens 4.6 GB for a 135M model's 30
    // layers), while the backward recomputes them from q, k and the mask (which it keeps
    // anyway) for one product q k^T and a softmax per layer — the same operations on the same
    // tensors, so the same values.
    ctx->save_for_backward({q, k, v, mask});
    ctx->saved_data["rules"] = static_cast<int64_t>(rules);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap ? *softcap : 0.0;
    return f.out;
  }

  // With N grad outputs (N = 1 outside vmap): every product below has N * R * T or N * S rows.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &k = saved[1], &v = saved[2];
    const auto qg = group_queries(saved[0], k.size(1));
    const double scale = ctx->saved_data["scale"].toDouble();
    const double softcap = ctx->saved_data["softcap"].toDouble();
    const auto f = core_forward(saved[0], k, v, saved[3], scale, softcap != 0.0 ? std::optional(softcap) : std::nullopt,
                               /*output=*/false);
    const auto &probs = f.probs, &probs_c = f.probs_c, &capped = f.capped;
    // probs is [B, G, R, T, S]: R query heads per kv head, T queries.
    const auto B = k.size(0), G = k.size(1), S = k.size(2), hd = k.size(3), R = probs.size(2), T = probs.size(3);
    const auto H = G * R;
    const auto rules = static_cast<Relevance>(ctx->saved_data["rules"].toInt());
    const torch::Tensor none;

    auto [g, level] = unbatch(grads[0]);  // [N, B, H, T, hd]
    const auto N = g.size(0);
    auto go = g.reshape({N, B, G, R * T, hd});

    // dV[n] = P^T dO[n]: the N grad outputs side by side as columns.
    auto dv = torch::matmul(probs_c.transpose(2, 3), go.permute({1, 2, 3, 0, 4}).reshape({B, G, R * T, N * hd}))
                  .view({B, G, S, N, hd})
                  .permute({3, 0, 1, 2, 4});
    // CP-LRP: the probabilities are constants, so out = P v is linear in v and nothing reaches q
    // and k (no need to compute it).
    if (rules == Relevance::cp_lrp) return {none, none, rebatch(dv, level), none, none, none, none};
    // dP[n] = dO[n] V^T: the N grad outputs stacked as rows.
    auto dp = torch::matmul(go.permute({1, 2, 0, 3, 4}).reshape({B, G, N * R * T, hd}), v.transpose(2, 3))
                  .view({B, G, N, R, T, S});
    // Softmax backward in the softmax's dtype: P * (dP - <dP, P>).
    auto p = probs.unsqueeze(2);  // [B, G, 1, R, T, S]
    auto dpc = dp.to(probs.scalar_type());
    auto ds = (p * (dpc - (dpc * p).sum(-1, /*keepdim=*/true))).to(qg.scalar_type());
    if (softcap != 0.0) ds = ds * (1 - capped.square()).view({B, G, 1, R, T, S});
    // AttnLRP's uniform rule on the two bilinear products: q k^T splits its relevance between q
    // and k, and P v between P and v; so q and k receive 1/2 * 1/2 of their gradient (folded
    // into the scale here) and v 1/2.
    ds = ds * (rules == Relevance::attnlrp ? scale * 0.25 : scale);
    // dQ[n] = dS[n] K (rows stacked); dK[n] = dS[n]^T Q (each dS[n] transposed, then stacked).
    auto dq = torch::matmul(ds.reshape({B, G, N * R * T, S}), k)
                  .view({B, G, N, R, T, hd})
                  .permute({2, 0, 1, 3, 4, 5})
                  .reshape({N, B, H, T, hd});
    auto dk = torch::matmul(ds.view({B, G, N, R * T, S}).transpose(3, 4).reshape({B, G, N * S, R * T}), qg)
                  .view({B, G, N, S, hd})
                  .permute({2, 0, 1, 3, 4});
    if (rules == Relevance::attnlrp) dv = dv * 0.5;
    return {rebatch(dq, level), rebatch(dk, level), rebatch(dv, level), none, none, none, none};
  }
};

}  // namespace

torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double scale, std::optional<double> softcap,
                             Relevance rules) {
  const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!grad) return core_forward(q, k, v, mask, scale, softcap).out;
  return AttentionCore::apply(q, k, v, mask, scale, softcap, rules);
}

}  // namespace pizza
