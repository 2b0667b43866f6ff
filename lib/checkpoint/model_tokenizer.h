// The tokenizer that belongs to a model checkpoint. Torch-free, so that commands which only
// tokenize (pizza tokenize --model, pizza api --tokenizer) need no engine.
#pragma once

#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"

namespace pizza {

// Whether `path` is a llama2.c checkpoint file (*.bin) that exists.
bool is_llama2c_file(const std::filesystem::path& path);

// The tokenizer of a model: the one in a Hugging Face model directory, or the sentencepiece
// model beside a llama2.c .bin (tokenizer.model, else the first tok*.model by name).
// InputError when a .bin has none beside it.
std::unique_ptr<Tokenizer> load_model_tokenizer(const std::filesystem::path& model);

}  // namespace pizza
