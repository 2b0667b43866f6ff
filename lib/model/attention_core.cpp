#include "model/attention_core.h"

#include <limits>
#include <vector>

#include "model/attention_core_blocks.h"
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

// One query block: queries [t0, t1) and the keys [s0, s1) they can see.
struct Block {
  int64_t t0, t1, s0, s1;
};

// The query blocks, or none for the single product (short prompts, no mask, or a mask that
// leaves every block all its keys). A key is dropped for a query when its mask value lies more
// than 1e30 below the query's highest one (transformers' finfo.min or -inf against 0): its
// score + mask then rounds to the masked value (scores are far below 1e30) and its exp to
// exactly 0 after the softmax subtracts the row maximum. A query whose keys are all masked (a
// left-padded row's padding) keeps all of them, since its softmax spreads over them all.
std::vector<Block> query_blocks(const torch::Tensor& mask, int64_t T, int64_t S, const AttentionBlocking& blocking) {
  if (!mask.defined() || mask.numel() == 0 || T * S < blocking.min_area || blocking.rows <= 0 || T <= blocking.rows)
    return {};
  const auto m = mask.to(torch::kFloat64);
  const auto live = (m < m.amax(-1, /*keepdim=*/true) - 1e30).logical_not();  // [B or 1, 1, T or 1, S or 1]
  auto any = live.expand({live.size(0), 1, T, S}).any(0).select(0, 0);  // [T, S]: any batch row
  const auto idx = torch::arange(S, torch::kLong).view({1, S});
  const auto first = torch::where(any, idx, S).amin(-1).contiguous(), last = torch::where(any, idx, -1).amax(-1).contiguous();
  const auto* f = first.data_ptr<int64_t>();
  const auto* l = last.data_ptr<int64_t>();
  std::vector<Block> blocks;
  bool narrowed = false;
  for (int64_t t0 = 0; t0 < T; t0 += blocking.rows) {
    Block b{t0, std::min(T, t0 + blocking.rows), S, 0};
    for (int64_t t = b.t0; t < b.t1; ++t) {
      b.s0 = std::min(b.s0, f[t]);
      b.s1 = std::max(b.s1, l[t] + 1);
    }
    if (b.s1 <= b.s0) b = {b.t0, b.t1, 0, S};  // cannot happen (every row has a live key); be safe
    narrowed = narrowed || b.s0 > 0 || b.s1 < S;
    blocks.push_back(b);
  }
  if (!narrowed) return {};
  return blocks;
}

// The mask's part for a block (dimensions of size 1 broadcast and are kept).
torch::Tensor mask_block(const torch::Tensor& mask, const Block& b) {
  auto m = mask.size(2) == 1 ? mask : mask.slice(2, b.t0, b.t1);
  return m.size(3) == 1 ? m : m.slice(3, b.s0, b.s1);
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

// The output, one query block at a time.
torch::Tensor core_output(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& mask, double scale, std::optional<double> softcap,
                          const AttentionBlocking& blocking) {
  const auto blocks = query_blocks(mask, q.size(2), k.size(2), blocking);
  if (blocks.empty()) return core_forward(q, k, v, mask, scale, softcap).out;
  std::vector<torch::Tensor> outs;
  for (const auto& b : blocks)
    outs.push_back(core_forward(q.slice(2, b.t0, b.t1), k.slice(2, b.s0, b.s1), v.slice(2, b.s0, b.s1),
                                mask_block(mask, b), scale, softcap)
                       .out);
  return torch::cat(outs, 2);
}

// The backward of one query block (the whole core for the single product): the block's
// probabilities recomputed from q, k and the mask, then its share of the gradients. go is the
// block's grad outputs [N, B, G, R*T, hd] (N grad outputs). Returns dq [N, B, H, T, hd] and dk,
// dv [N, B, G, S, hd] (dq and dk undefined under CP-LRP); the relevance rules' constant factors
// are applied by the caller.
struct BlockGrads {
  torch::Tensor dq, dk, dv;
};
BlockGrads block_backward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& mask, double scale, std::optional<double> softcap, Relevance rules,
                          const torch::Tensor& go) {
  const auto qg = group_queries(q, k.size(1));
  const auto f = core_forward(q, k, v, mask, scale, softcap, /*output=*/false);
  const auto &probs = f.probs, &probs_c = f.probs_c, &capped = f.capped;
  // probs is [B, G, R, T, S]: R query heads per kv head, T queries.
  const auto B = k.size(0), G = k.size(1), S = k.size(2), hd = k.size(3), R = probs.size(2), T = probs.size(3);
  const auto H = G * R;
  const auto N = go.size(0);
  BlockGrads out;
  // dV[n] = P^T dO[n]: the N grad outputs side by side as columns.
  out.dv = torch::matmul(probs_c.transpose(2, 3), go.permute({1, 2, 3, 0, 4}).reshape({B, G, R * T, N * hd}))
               .view({B, G, S, N, hd})
               .permute({3, 0, 1, 2, 4});
  // CP-LRP: the probabilities are constants, so out = P v is linear in v and nothing reaches q
  // and k (no need to compute it).
  if (rules == Relevance::cp_lrp) return out;
  // dP[n] = dO[n] V^T: the N grad outputs stacked as rows.
  auto dp = torch::matmul(go.permute({1, 2, 0, 3, 4}).reshape({B, G, N * R * T, hd}), v.transpose(2, 3))
                .view({B, G, N, R, T, S});
  // Softmax backward in the softmax's dtype: P * (dP - <dP, P>).
  auto p = probs.unsqueeze(2);  // [B, G, 1, R, T, S]
  auto dpc = dp.to(probs.scalar_type());
  auto ds = (p * (dpc - (dpc * p).sum(-1, /*keepdim=*/true))).to(qg.scalar_type());
  if (softcap) ds = ds * (1 - capped.square()).view({B, G, 1, R, T, S});
  // AttnLRP's uniform rule on the two bilinear products: q k^T splits its relevance between q
  // and k, and P v between P and v; so q and k receive 1/2 * 1/2 of their gradient (folded
  // into the scale here) and v 1/2 (the caller's).
  ds = ds * (rules == Relevance::attnlrp ? scale * 0.25 : scale);
  // dQ[n] = dS[n] K (rows stacked); dK[n] = dS[n]^T Q (each dS[n] transposed, then stacked).
  out.dq = torch::matmul(ds.reshape({B, G, N * R * T, S}), k)
               .view({B, G, N, R, T, hd})
               .permute({2, 0, 1, 3, 4, 5})
               .reshape({N, B, H, T, hd});
  out.dk = torch::matmul(ds.view({B, G, N, R * T, S}).transpose(3, 4).reshape({B, G, N * S, R * T}), qg)
               .view({B, G, N, S, hd})
               .permute({2, 0, 1, 3, 4});
  return out;
}

struct AttentionCore : torch::autograd::Function<AttentionCore> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& mask, double scale,
                               std::optional<double> softcap, Relevance rules, int64_t block_rows,
                               int64_t block_min_area) {
    auto out = core_output(q, k, v, mask, scale, softcap, {block_rows, block_min_area});
    // The probabilities are not kept: [B, H, T, S] per layer, they would make the forward's
    // graph grow with the square of the length (at 2048 tokens 4.6 GB for a 135M model's 30
    // layers), while the backward recomputes them from q, k and the mask (which it keeps
    // anyway) for one product q k^T and a softmax per layer — the same operations on the same
    // tensors (and the same query blocks), so the same values.
    ctx->save_for_backward({q, k, v, mask});
    ctx->saved_data["rules"] = static_cast<int64_t>(rules);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["softcap"] = softcap ? *softcap : 0.0;
    ctx->saved_data["block_rows"] = block_rows;
    ctx->saved_data["block_min_area"] = block_min_area;
    return out;
  }

  // With N grad outputs (N = 1 outside vmap): every product below has N * R * T or N * S rows.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &mask = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const double cap = ctx->saved_data["softcap"].toDouble();
    std::optional<double> softcap;
    if (cap != 0.0) softcap.emplace(cap);
    const auto rules = static_cast<Relevance>(ctx->saved_data["rules"].toInt());
    const AttentionBlocking blocking{ctx->saved_data["block_rows"].toInt(), ctx->saved_data["block_min_area"].toInt()};
    const torch::Tensor none;
    const auto B = k.size(0), G = k.size(1), S = k.size(2), hd = k.size(3), T = q.size(2);

    auto [g, level] = unbatch(grads[0]);  // [N, B, H, T, hd]
    const auto N = g.size(0);
    const auto blocks = query_blocks(mask, T, S, blocking);
    BlockGrads all;
    if (blocks.empty()) {
      all = block_backward(q, k, v, mask, scale, softcap, rules, g.reshape({N, B, G, -1, hd}));
    } else {
      // dq per block is the block's rows; dk and dv sum over the blocks, each into the keys it
      // saw (in float32 for reduced-precision inputs, then rounded once).
      const auto acc = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
      all.dv = torch::zeros({N, B, G, S, hd}, g.options().dtype(acc));
      if (rules != Relevance::cp_lrp) all.dk = torch::zeros({N, B, G, S, hd}, g.options().dtype(acc));
      std::vector<torch::Tensor> dqs;
      for (const auto& b : blocks) {
        auto r = block_backward(q.slice(2, b.t0, b.t1), k.slice(2, b.s0, b.s1), v.slice(2, b.s0, b.s1),
                                mask_block(mask, b), scale, softcap, rules,
                                g.slice(3, b.t0, b.t1).reshape({N, B, G, -1, hd}));
        all.dv.slice(3, b.s0, b.s1).add_(r.dv);
        if (rules == Relevance::cp_lrp) continue;
        all.dk.slice(3, b.s0, b.s1).add_(r.dk);
        dqs.push_back(r.dq);
      }
      all.dv = all.dv.to(v.scalar_type());
      if (rules != Relevance::cp_lrp) {
        all.dk = all.dk.to(k.scalar_type());
        all.dq = torch::cat(dqs, 3);
      }
    }
    if (rules == Relevance::cp_lrp) return {none, none, rebatch(all.dv, level), none, none, none, none, none, none};
    if (rules == Relevance::attnlrp) all.dv = all.dv * 0.5;
    return {rebatch(all.dq, level), rebatch(all.dk, level), rebatch(all.dv, level), none, none, none, none, none, none};
  }
};

}  // namespace

torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double scale, std::optional<double> softcap,
                             Relevance rules) {
  return attention_core(q, k, v, mask, scale, softcap, rules, AttentionBlocking{});
}

torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& mask, double scale, std::optional<double> softcap, Relevance rules,
                             AttentionBlocking blocking) {
  const bool grad = torch::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!grad) return core_output(q, k, v, mask, scale, softcap, blocking);
  return AttentionCore::apply(q, k, v, mask, scale, softcap, rules, blocking.rows, blocking.min_area);
}

}  // namespace pizza
