// `pizza eval` over any perturbation backend (an OpenAI-compatible server, or a test fake):
// the perturbation methods (occlusion, hierarchical) run through the backend-agnostic engine,
// and every method's perturbations are scored teacher-forced by the same backend. Gradient
// methods need the model's weights: they are the local runner's (lib/engine/local_eval.h).
#pragma once

#include <string>
#include <vector>

#include "eval/report.h"
#include "perturbation/engine.h"

namespace pizza::eval {

struct BackendEvalRequest {
  std::vector<std::string> methods;    // "occlusion", "hierarchical", "random"
  perturbation::EngineOptions engine;  // metrics, hierarchical options; algorithm set per method
  Options options;
  std::function<void(size_t, size_t)> progress;  // (steps done, steps of this prompt)
};

// The methods a backend without weights can run; UsageError for any other (naming it).
void check_backend_methods(const std::vector<std::string>& methods);

// Evaluates one prompt whose units `perturber` holds, explaining `output` (a greedy completion
// of the unperturbed prompt, with its tokens' texts). The backend must be able to score.
PromptRecord evaluate_backend(perturbation::PerturbationBackend& backend, const perturbation::Perturber& perturber,
                              const perturbation::Generation& output, const BackendEvalRequest& req,
                              uint64_t prompt_seed);

// A prompt record's description: the prompt, its units (text and span) and the explained output.
PromptRecord describe_prompt(const perturbation::PromptUnits& units, const perturbation::Generation& output);

// The random baseline's seed for a prompt (the same locally and over a backend).
uint64_t random_seed(uint64_t seed, uint64_t prompt_seed);

}  // namespace pizza::eval
