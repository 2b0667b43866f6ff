#include "support_torch/reference.h"

#include <stdexcept>

namespace pizza::test {

ReferenceTensors::ReferenceTensors(const std::filesystem::path& file) : ck_(checkpoint::Checkpoint::open(file)) {}

torch::Tensor ReferenceTensors::operator[](const std::string& name) const {
  const auto& v = ck_.get(name);
  auto dtype = v.dtype == checkpoint::DType::F64   ? torch::kFloat64
               : v.dtype == checkpoint::DType::I64 ? torch::kInt64
                                                   : torch::kFloat32;
  return tensor_from_view(v, dtype, torch::kCPU).clone();
}

double worst_excess(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol) {
  auto a64 = a.to(torch::kFloat64), b64 = b.to(torch::kFloat64);
  return ((a64 - b64).abs() - (atol + rtol * b64.abs())).max().item<double>();
}

Runtime cpu_runtime(const std::string& dtype) {
  RuntimeOptions o;
  o.dtype = dtype;
  return apply_runtime(o);
}

double worst_row_relative(const torch::Tensor& a, const torch::Tensor& b) {
  auto diff = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().amax(1);
  auto scale = b.to(torch::kFloat64).abs().amax(1).clamp_min(1e-300);
  return (diff / scale).max().item<double>();
}

GradientRequest gradient_request(std::vector<int64_t> prompt, std::vector<int64_t> outputs, const std::string& method,
                                 const std::string& target) {
  GradientRequest req;
  req.prompt = std::move(prompt);
  req.outputs = std::move(outputs);
  req.method = find_gradient_method(method);
  if (!req.method) throw std::invalid_argument("no gradient method " + method);
  req.target = &find_target(target);
  return req;
}

}  // namespace pizza::test
