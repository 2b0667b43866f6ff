// libFuzzer target: a Hugging Face tokenizer.json, loaded and then used (encode, decode).
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/bpe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto in = pizza::fuzz::as_text(data, size);
  const auto file = dir.write("tokenizer.json", in);
  try {
    // Both settings of add_bos_token: it decides which special tokens the encoder inserts.
    pizza::TokenizerConfig cfg;
    cfg.add_bos_token = size % 2 == 0;
    auto tok = pizza::load_hf_tokenizer_json(file, cfg);
    pizza::fuzz::exercise_tokenizer(*tok, pizza::fuzz::tail_text(in));
  } catch (const pizza::InputError&) {
  }
  return 0;
}
