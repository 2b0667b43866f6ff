// libFuzzer target: a tiktoken rank file ("<base64 token> <rank>" per line), loaded under one
// of the encodings pizza knows (picked by the input's length) and then used.
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/bpe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  static constexpr std::string_view kEncodings[] = {"cl100k_base", "o200k_base", "r50k_base", "p50k_base", "gpt2"};
  const auto in = pizza::fuzz::as_text(data, size);
  const auto file = dir.write("ranks.tiktoken", in);
  try {
    auto tok = pizza::load_tiktoken(file, kEncodings[size % std::size(kEncodings)]);
    pizza::fuzz::exercise_tokenizer(*tok, pizza::fuzz::tail_text(in));
  } catch (const pizza::InputError&) {
  }
  return 0;
}
