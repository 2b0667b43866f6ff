// libFuzzer target: result files as `pizza diff` reads them (one JSON result, or JSON Lines of
// them). Input: the baseline, "\n@@@\n", the new file (without the separator, the baseline is
// compared with itself); both are parsed, compared and rendered.
#include <cstdint>
#include <string>

#include "diff/diff.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto [base_text, fresh_text] = pizza::fuzz::split_two(pizza::fuzz::as_text(data, size));
  try {
    const auto base = pizza::diff::parse_results(std::string(base_text), "base.json");
    const auto fresh = fresh_text.empty() ? base : pizza::diff::parse_results(std::string(fresh_text), "new.json");
    const auto report = pizza::diff::compare(base, fresh, pizza::diff::Options{});
    (void)pizza::diff::render_text(report);
    (void)pizza::diff::render_json(report);
  } catch (const pizza::InputError&) {
  }
  return 0;
}
