// Layer-wise relevance propagation in the Gradient x Input form: input x gradient, with the
// gradient taken under modified backward rules (model/relevance.h; the rules themselves live
// beside the operations they change, in model/grad_ops.cpp and model/attention_core.cpp). One
// backward pass per explained token, like input x gradient, and in the same vectorised passes.
// The natural target is the logit: LRP distributes a prediction's pre-softmax score.
#include "attribution/method.h"

namespace pizza {

// AttnLRP (Achtibat et al., ICML 2024).
GradientMethod attnlrp_method() {
  return {"attnlrp",
          "AttnLRP relevance: input x gradient under LRP rules (norm scale constant, identity rule on activations, "
          "uniform rule on gate x up and attention's products); target logit by default",
          false, input_point, input_times_gradient, Relevance::attnlrp, "logit"};
}

// CP-LRP (Ali et al., ICML 2022): attention probabilities and gates held constant.
GradientMethod cp_lrp_method() {
  return {"cp-lrp",
          "CP-LRP relevance: as attnlrp but attention probabilities and the MLP gate are constants (conserves on "
          "bias-free models); target logit by default",
          false, input_point, input_times_gradient, Relevance::cp_lrp, "logit"};
}

}  // namespace pizza
