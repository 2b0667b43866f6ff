// Input x gradient: sum over the hidden dimension of embedding * gradient (signed; a
// first-order estimate of each position's contribution).
#include "attribution/method.h"

namespace pizza {

GradientMethod input_x_gradient_method() {
  return {"input-x-gradient", "sum over hidden of embedding x gradient (signed; --abs for magnitudes)", false,
          input_point, input_times_gradient};
}

}  // namespace pizza
