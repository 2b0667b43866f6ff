// libFuzzer target: a prompts file (`--prompts`), parsed as JSONL and as text, and every
// record's overrides converted to command-line values as the subcommands do.
#include <cstdint>

#include "batch/records.h"
#include "fuzz/fuzz_support.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto in = pizza::fuzz::as_text(data, size);
  for (auto format : {pizza::batch::PromptFormat::jsonl, pizza::batch::PromptFormat::text}) {
    try {
      for (const auto& r : pizza::batch::parse_prompts(in, format, "prompts.jsonl")) {
        for (const auto& [key, json] : r.overrides) {
          try {
            (void)pizza::batch::json_to_cli_values(key, json);
          } catch (const pizza::InputError&) {
          }
        }
      }
    } catch (const pizza::InputError&) {
    }
  }
  (void)pizza::batch::detect_prompt_format("-", in);
  return 0;
}
