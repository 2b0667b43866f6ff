// Sentencepiece tokenizer (tokenizer.model) through the sentencepiece library (loaded as pizza's
// sentencepiece module, see sentencepiece_abi.h), honouring tokenizer_config.json's
// add_bos_token / add_eos_token and special tokens. Throws InputError when the module is
// missing or the model file is not a sentencepiece model.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace pizza {

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file, const TokenizerConfig& cfg = {});

// One vocabulary entry of a tokenizer.model, as stored (for converters and tools).
struct SentencePieceEntry {
  std::string piece;
  float score = 0;
  int type = 1;  // sentencepiece's Type: 1 normal (user-defined pieces too), 2 unknown, 3 control, 5 unused, 6 byte
};

// The pieces of a tokenizer.model in id order, as the library reads them; throws InputError on a
// corrupt file.
std::vector<SentencePieceEntry> read_sentencepiece_pieces(const std::filesystem::path& model_file);

}  // namespace pizza
