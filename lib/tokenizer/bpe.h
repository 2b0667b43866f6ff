// Byte-level BPE tokenizers (GPT-2, Llama-3, Qwen2, SmolLM, Pythia, OpenAI tiktoken).
// Every loader throws InputError naming the file (and line or field) on bad input.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace pizza {

// A Hugging Face tokenizer.json whose model.type is "BPE" with a ByteLevel pre-tokenizer
// (alone, or after Split/Digits steps). cfg.add_bos_token / add_eos_token override the
// post_processor's template; cfg.bos_token etc. name the control tokens.
std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::filesystem::path& path,
                                                  const TokenizerConfig& cfg = {});

// GPT-2's original pair of files: vocab.json (piece -> id) and merges.txt ("a b" per line,
// optionally after a "#version" line).
std::unique_ptr<Tokenizer> load_gpt2_vocab_merges(const std::filesystem::path& vocab_json,
                                                  const std::filesystem::path& merges_txt);

// An OpenAI tiktoken rank file ("<base64 token> <rank>" per line). `encoding_name` picks the
// pre-tokenizer regex and special tokens: cl100k_base, o200k_base, r50k_base, gpt2, p50k_base.
std::unique_ptr<Tokenizer> load_tiktoken(const std::filesystem::path& rank_file,
                                         std::string_view encoding_name);

// True for the encoding names load_tiktoken knows.
bool looks_like_tiktoken_name(std::string_view name);

}  // namespace pizza
