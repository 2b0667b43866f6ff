// `pizza local --method occlusion|hierarchical`: the perturbation engine over the local model.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "engine/local_backend.h"
#include "model/model.h"
#include "perturbation/engine.h"
#include "result/attribution_result.h"
#include "units/units.h"

namespace pizza {

struct LocalPerturbationRequest {
  std::string prompt;
  std::optional<std::string> target_text;  // teacher-forced only
  int64_t max_new_tokens = 16;
  // algorithm, scoring (default teacher-forced), metrics, hierarchical options, progress; the
  // embeddings fields are filled here.
  perturbation::EngineOptions engine;
  perturbation::StrategySpec strategy;
  UnitSpec unit;
  LocalBackendOptions backend;
  // --embeddings: another model's table for nth-nearest and cosine (default: the model's own).
  const LanguageModel* embeddings = nullptr;
};

AttributionResult run_local_perturbation(const LanguageModel& lm, const LocalPerturbationRequest& req);

}  // namespace pizza
