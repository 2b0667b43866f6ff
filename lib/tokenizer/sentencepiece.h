// Sentencepiece tokenizer (tokenizer.model) through libsentencepiece, honouring
// tokenizer_config.json's add_bos_token / add_eos_token and special tokens.
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"

namespace pizza {

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file, const TokenizerConfig& cfg = {});

}  // namespace pizza
