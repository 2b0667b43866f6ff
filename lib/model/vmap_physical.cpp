#include "model/vmap_physical.h"

#include <ATen/BatchedTensorImpl.h>

#include <stdexcept>

namespace pizza {

std::pair<torch::Tensor, std::optional<int64_t>> unbatch(const torch::Tensor& t) {
  auto* impl = at::maybeGetBatchedImpl(t);
  if (impl == nullptr) return {t.unsqueeze(0), std::nullopt};
  const auto bdims = impl->bdims();
  if (bdims.size() != 1) throw std::logic_error("written backward: nested vmap levels are not supported");
  return {impl->value().movedim(bdims[0].dim(), 0), bdims[0].level()};
}

torch::Tensor rebatch(const torch::Tensor& physical, std::optional<int64_t> level) {
  return level ? at::_add_batch_dim(physical, 0, *level) : physical.squeeze(0);
}

}  // namespace pizza
