// The brute force the faithfulness tests compare against: a prompt with five word units, and
// the output's token probabilities after every subset of them is cut from the text, from one
// `pizza local --prompts --target-text` batch run (nothing shared with the code under test's
// scoring path).
#pragma once

#include <simdjson.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli_helpers.h"

namespace pizza::test {

// Units: five word spans of the prompt; "Once" and the end are never removed, so every
// perturbed text tokenizes (sentencepiece splits at spaces) exactly as the engines remove tokens.
inline const std::string kPrompt = "Once upon a time there was a little girl";
inline const std::vector<std::pair<size_t, size_t>> kSpans{{4, 9}, {9, 11}, {11, 16}, {16, 22}, {22, 26}};
inline const std::string kSpansArg = "4:9,9:11,11:16,16:22,22:26";
inline const std::string kTarget = " named Lily. She";
inline constexpr size_t kU = 5;

inline std::string cut(const std::vector<size_t>& removed) {
  std::string out;
  size_t cursor = 0;
  for (auto u : removed) {
    out += kPrompt.substr(cursor, kSpans[u].first - cursor);
    cursor = kSpans[u].second;
  }
  return out + kPrompt.substr(cursor);
}

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Output token probabilities of the target after every subset of the units (bitmask: removed),
// from one `pizza local --prompts` batch run over the 32 cut texts.
inline std::map<unsigned, std::vector<double>> brute_force_probs(const TempDir& dir) {
  std::string jsonl;
  for (unsigned mask = 0; mask < (1u << kU); ++mask) {
    std::vector<size_t> removed;
    for (size_t u = 0; u < kU; ++u)
      if (mask & (1u << u)) removed.push_back(u);
    jsonl += "{\"id\": \"" + std::to_string(mask) + "\", \"prompt\": " + json_string(cut(removed)) +
             ", \"target_text\": " + json_string(kTarget) + "}\n";
  }
  spit(dir / "cut.jsonl", jsonl);
  auto r = run_cli({"local", "-m", stories_dir(), "--prompts", (dir / "cut.jsonl").string(), "-o",
                    (dir / "cut.out.jsonl").string(), "-q", "--threads", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::map<unsigned, std::vector<double>> probs;
  simdjson::dom::parser parser;
  for (const auto& line : lines_of(slurp(dir / "cut.out.jsonl"))) {
    simdjson::dom::element doc = parser.parse(line);
    const auto id = static_cast<unsigned>(std::stoul(std::string(std::string_view(doc["id"]))));
    std::vector<double> p;
    for (simdjson::dom::element o : simdjson::dom::array(doc["outputs"])) p.push_back(double(o["prob"]));
    probs[id] = p;
  }
  REQUIRE(probs.size() == (1u << kU));
  return probs;
}

inline unsigned mask_of(const std::vector<size_t>& removed) {
  unsigned m = 0;
  for (auto u : removed) m |= 1u << u;
  return m;
}

}  // namespace pizza::test
