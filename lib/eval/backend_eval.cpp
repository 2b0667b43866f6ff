#include "eval/backend_eval.h"

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace pizza::eval {

uint64_t random_seed(uint64_t seed, uint64_t prompt_seed) { return seed * 0x100000001B3ull + prompt_seed; }

PromptRecord describe_prompt(const perturbation::PromptUnits& pu, const perturbation::Generation& output) {
  PromptRecord rec;
  rec.prompt = pu.text;
  rec.output_text = output.text;
  for (const auto& t : output.tokens) rec.output_tokens.push_back(t.token);
  for (const auto& u : pu.units) {
    rec.units.push_back(pu.text.substr(u.span.first, u.span.second - u.span.first));
    rec.spans.push_back(u.span);
  }
  return rec;
}

void check_backend_methods(const std::vector<std::string>& methods) {
  if (methods.empty()) throw UsageError("--methods: no method given");
  for (const auto& m : methods)
    if (m != "occlusion" && m != "hierarchical" && m != "context-cite" && m != "random")
      throw UsageError("--methods: '" + m + "' cannot run over an HTTP server (expected occlusion, hierarchical, "
                       "context-cite or random; gradient methods need a local model)");
}

PromptRecord evaluate_backend(perturbation::PerturbationBackend& backend, const perturbation::Perturber& perturber,
                              const perturbation::Generation& output, const BackendEvalRequest& req,
                              uint64_t prompt_seed) {
  if (!backend.can_score()) throw UsageError("pizza eval needs a backend that scores outputs teacher-forced");
  const size_t R = output.tokens.size(), U = perturber.size();
  if (R == 0) throw InputError("there is no output token to evaluate");
  if (U == 0) throw InputError("the prompt has no unit that can be removed");
  const size_t steps = req.methods.size() + 1;

  std::vector<MethodScores> methods;
  for (const auto& name : req.methods) {
    MethodScores ms;
    if (name == "random") {
      ms = random_scores(R, U, kRandomDraws, random_seed(req.options.seed, prompt_seed));
    } else {
      auto eo = req.engine;
      eo.algorithm = perturbation::parse_algorithm(name);
      eo.scoring = perturbation::Scoring::teacher_forced;
      eo.context_cite.seed = req.options.seed + prompt_seed;  // as the local runner does
      const auto t0 = std::chrono::steady_clock::now();
      auto er = perturbation::run_engine(backend, perturber, eo, output);
      ms.time_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ms.method = name;
      ms.rows = R;
      ms.units = U;
      ms.model_calls = er.model_calls;
      ms.draws.push_back(std::move(er.matrices.at(0).values));
    }
    methods.push_back(std::move(ms));
    if (req.progress) req.progress(methods.size(), steps);
  }

  PromptRecord rec = describe_prompt(perturber.units(), output);
  const auto t0 = std::chrono::steady_clock::now();
  rec.eval = evaluate_prompt(
      methods, req.options,
      [&](const std::vector<std::vector<size_t>>& sets) {
        std::vector<perturbation::Prompt> prompts;
        prompts.reserve(sets.size());
        for (const auto& s : sets) prompts.push_back(perturber.perturb(s));
        return backend.score(prompts, output);
      },
      prompt_seed);
  rec.score_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (req.progress) req.progress(steps, steps);
  return rec;
}

}  // namespace pizza::eval
