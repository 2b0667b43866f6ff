// Helpers for comparing the engine with reference tensors stored in ../shared.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "attribution/gradient.h"
#include "checkpoint/safetensors.h"
#include "model/model.h"

namespace pizza::test {

// All tensors of a reference .safetensors file, as torch tensors (copied, own dtype).
class ReferenceTensors {
 public:
  explicit ReferenceTensors(const std::filesystem::path& file);
  torch::Tensor operator[](const std::string& name) const;
  bool contains(const std::string& name) const { return ck_.contains(name); }

 private:
  checkpoint::Checkpoint ck_;
};

// max |a - b| - (atol + rtol |b|) <= 0 elementwise; returns the worst excess (<= 0 passes).
double worst_excess(const torch::Tensor& a, const torch::Tensor& b, double atol, double rtol);

// Largest |a - b| in each row divided by that row's largest |b| (in float64).
double worst_row_relative(const torch::Tensor& a, const torch::Tensor& b);

Runtime cpu_runtime(const std::string& dtype = "float32");

// A gradient request for `method` and `target` by name (each test's runner then sets what it
// varies); throws std::invalid_argument for a method the registry lacks.
GradientRequest gradient_request(std::vector<int64_t> prompt, std::vector<int64_t> outputs, const std::string& method,
                                 const std::string& target);

}  // namespace pizza::test
