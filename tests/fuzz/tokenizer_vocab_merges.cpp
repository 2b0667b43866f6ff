// libFuzzer target: GPT-2's vocab.json + merges.txt pair. Input: vocab.json, "\n@@@\n",
// merges.txt (without the separator, merges.txt is empty).
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "fuzz/tokenizer_exercise.h"
#include "tokenizer/bpe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const pizza::fuzz::ScratchDir dir;
  const auto in = pizza::fuzz::as_text(data, size);
  const auto [vocab, merges] = pizza::fuzz::split_two(in);
  const auto vocab_file = dir.write("vocab.json", vocab);
  const auto merges_file = dir.write("merges.txt", merges);
  try {
    auto tok = pizza::load_gpt2_vocab_merges(vocab_file, merges_file);
    pizza::fuzz::exercise_tokenizer(*tok, pizza::fuzz::tail_text(in));
  } catch (const pizza::InputError&) {
  }
  return 0;
}
