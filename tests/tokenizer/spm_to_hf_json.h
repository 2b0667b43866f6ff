// Test support: writes the Hugging Face tokenizer.json that transformers' LlamaConverter makes
// from a sentencepiece BPE tokenizer.model, so the tokenizer.json loader can be checked against
// the reference ids of the original model.
#pragma once

#include <filesystem>
#include <string>

namespace pizza::test {

struct SpmJsonStyle {
  // true: pre_tokenizer Metaspace (older/newer converters); false: normalizer
  // Sequence[Prepend("▁"), Replace(" " -> "▁")] and no pre-tokenizer.
  bool metaspace = false;
  // Metaspace fields: prepend_scheme (empty: the older "add_prefix_space": true instead), split.
  std::string prepend_scheme = "first";
  bool split = false;
  // Decoder: Metaspace (older files) instead of Sequence[Replace, ByteFallback, Fuse, Strip].
  bool metaspace_decoder = false;
  // Write the TemplateProcessing post-processor that adds <s> (older files had none).
  bool bos_template = true;
};

// The tokenizer.json text for `model` (a sentencepiece BPE model with byte pieces).
std::string spm_to_hf_json(const std::filesystem::path& model, const SpmJsonStyle& style);

}  // namespace pizza::test
