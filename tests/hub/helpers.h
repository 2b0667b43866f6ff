// Small helpers shared by the hub tests.
#pragma once

#include <map>
#include <string>

#include "hub/hub.h"
#include "support/paths.h"  // slurp, spit

namespace pizza::test {

// An environment made of exactly these variables.
inline hub::EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Runs `f`, which must throw; returns the exception's message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return {};
}

}  // namespace pizza::test
