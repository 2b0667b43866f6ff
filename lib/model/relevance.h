// Which backward rules a forward pass records: the ordinary gradient, or the modified backward
// of layer-wise relevance propagation, under which input x gradient becomes relevance.
//
// LRP in the Gradient x Input form (Achtibat et al. 2024, "AttnLRP"; the authors' library lxt):
// the forward values are unchanged and a few operations get a different backward, so that the
// vector-Jacobian product the attribution engine already runs propagates relevance. Linear
// layers, residual additions, rotary embeddings, the embedding and the LM head are the epsilon
// rule under x * gradient as they are; the operations that change are written beside their
// ordinary backward in grad_ops.cpp and attention_core.cpp.
#pragma once

namespace pizza {

enum class Relevance {
  gradient,  // ordinary backward
  // AttnLRP: norms' scale a constant, activations' identity rule, the gate x up product and the
  // attention's bilinear products split uniformly (q and k / 4, v / 2), softmax's backward kept.
  attnlrp,
  // CP-LRP (Ali et al. 2022, "conservative propagation"): norms as AttnLRP, attention
  // probabilities and the gated MLP's gate branch constants, activations' identity rule.
  cp_lrp,
};

}  // namespace pizza
