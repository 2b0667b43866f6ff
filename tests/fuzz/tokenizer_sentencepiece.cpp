// libFuzzer target: a sentencepiece tokenizer.model, through pizza's sentencepiece module (the
// library parses the protobuf; pizza checks what it reports and adds BOS/EOS and the spans).
// The module is opened with RTLD_LOCAL alone in this build: ASan refuses RTLD_DEEPBIND, and
// without libtorch there is no second protobuf to keep it apart from (lib/tokenizer/sentencepiece.cpp).
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/sentencepiece.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto in = pizza::fuzz::as_text(data, size);
  const auto file = dir.write("tokenizer.model", in);
  try {
    // add_bos_token/add_eos_token on: the special-token paths (an empty BOS piece once hung).
    pizza::TokenizerConfig cfg;
    cfg.add_bos_token = true;
    cfg.add_eos_token = size % 2 == 0;
    auto tok = pizza::load_sentencepiece(file, cfg);
    pizza::fuzz::exercise_tokenizer(*tok, pizza::fuzz::tail_text(in));
  } catch (const pizza::InputError&) {
  }
  return 0;
}
