// `pizza local` refuses what it cannot attribute with one clear line: exit 2 for usage errors
// (flags), exit 1 for input the model cannot take — never a crash or a partial table.
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <cstdint>
#include <fstream>

#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

CliResult local(std::vector<std::string> args, const std::string& model = stories_dir()) {
  args.insert(args.begin(), {"local", "--model", model});
  return run_cli(args);
}

// `n` copies of " a": stories260K's tokenizer gives one token per copy (plus BOS).
std::string words(int n) {
  std::string s = "a";
  for (int i = 1; i < n; ++i) s += " a";
  return s;
}

// Sets the embedding row of `token` in a copied stories260K model to NaN and unties the output
// head (the file holds lm_head.weight too), so that a prompt holding the token gets NaN
// everywhere and one without it stays finite (with -n 1 the generated token is not fed back).
void poison_embedding_row(const ModelCopy& m, int token) {
  const auto config = m / "config.json";
  std::string text = slurp(config);
  const std::string tied = "\"tie_word_embeddings\": true";
  REQUIRE(text.find(tied) != std::string::npos);
  text.replace(text.find(tied), tied.size(), "\"tie_word_embeddings\": false");
  std::filesystem::remove(config);
  spit(config, text);
  const auto weights = m / "model.safetensors";
  std::filesystem::permissions(weights, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
  std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);  // little-endian, as is this machine
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  simdjson::dom::parser parser;
  simdjson::dom::element t = parser.parse(header)["model.embed_tokens.weight"].value();
  REQUIRE(std::string_view(t["dtype"].get_string().value()) == "F32");
  const uint64_t width = uint64_t(simdjson::dom::array(t["shape"].value()).at(1).get_uint64().value());
  const uint64_t begin = uint64_t(simdjson::dom::array(t["data_offsets"].value()).at(0).get_uint64().value());
  f.seekp(static_cast<std::streamoff>(8 + header_len + begin + uint64_t(token) * width * 4));
  const uint32_t nan_bits = 0x7FC00000;
  for (uint64_t i = 0; i < width; ++i) f.write(reinterpret_cast<const char*>(&nan_bits), 4);
  REQUIRE(f.good());
}

}  // namespace

TEST_CASE("cli: local refuses a result holding NaN and names the first bad cell", "[cli][bad-input]") {
  // It used to exit 0 with a table of "nan" (JSON: null) that read as an attribution.
  ModelCopy m;
  poison_embedding_row(m, 280);  // "▁c": "a cat" holds it, "Once upon" does not
  SECTION("gradient method") {
    check_input_error(local({"-p", "a cat", "-n", "1"}, m.path().string()),
                      {"matrix \"prob\" row 0 (output ", "column 0 (input \"<s>\") is NaN"});
  }
  SECTION("perturbation method") {
    check_input_error(local({"-p", "a cat", "-n", "1", "--method", "occlusion"}, m.path().string()),
                      {"matrix \"prob-diff\" row 0 (output ", "column 0 (input \"a\") is NaN"});
  }
  SECTION("batch: that record fails with the message and the other is written") {
    TempDir dir;
    spit(dir / "p.txt", "Once upon\na cat\n");
    const auto out = dir / "out.jsonl";
    auto r = run_cli({"local", "--model", m.path().string(), "--prompts", (dir / "p.txt").string(), "-n", "1",
                      "--quiet", "-o", out.string()});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("1 of 2 records failed") != std::string::npos);
    const std::string records = slurp(out);
    INFO("records: " << records);
    const size_t second = records.find('\n') + 1;
    CHECK(records.substr(0, second).find("\"matrix\"") != std::string::npos);
    CHECK(records.find("\"error\":\"attribution result: matrix \\\"prob\\\" row 0", second) != std::string::npos);
  }
}

TEST_CASE("cli: local usage errors exit 2 naming the flag", "[cli][bad-input]") {
  SECTION("--max-new-tokens 0") { check_usage_error(local({"-p", "Once", "--max-new-tokens", "0"}), "--max-new-tokens"); }
  SECTION("--max-new-tokens -3") { check_usage_error(local({"-p", "Once", "--max-new-tokens", "-3"}), "--max-new-tokens"); }
  SECTION("unknown method") { check_usage_error(local({"-p", "Once", "-n", "2", "--method", "shapley"}), "shapley"); }
  SECTION("unknown target") { check_usage_error(local({"-p", "Once", "-n", "2", "--target", "entropy"}), "entropy"); }
  SECTION("unknown norm") { check_usage_error(local({"-p", "Once", "-n", "2", "--norm", "l3"}), "l3"); }
  SECTION("unknown format") { check_usage_error(local({"-p", "Once", "-n", "2", "--format", "yaml"}), "yaml"); }
  // It was recorded among the result's JSON parameters, where NaN has no spelling.
  SECTION("--static-threshold nan") {
    check_usage_error(local({"-p", "Once", "-n", "2", "--method", "hierarchical", "--static-threshold", "nan"}),
                      "--static-threshold");
  }
  // Negative counts once wrapped to 2^64 - 1 in a size_t and ran.
  SECTION("--stride -1") {
    check_usage_error(local({"-p", "Once", "-n", "2", "--method", "hierarchical", "--stride", "-1"}), "--stride");
  }
  SECTION("--init-chunk-size -2") {
    check_usage_error(local({"-p", "Once", "-n", "2", "--method", "hierarchical", "--init-chunk-size", "-2"}),
                      "--init-chunk-size");
  }
  SECTION("--max-depth -1") {
    check_usage_error(local({"-p", "Once", "-n", "2", "--method", "hierarchical", "--max-depth", "-1"}), "--max-depth");
  }
}

TEST_CASE("cli: local input errors exit 1 with one clear line", "[cli][bad-input]") {
  SECTION("a prompt longer than the model's context (512 positions)") {
    check_input_error(local({"-p", words(600), "-n", "2"}), {"512"});
  }
  SECTION("a prompt that fits but whose output would not") {
    check_input_error(local({"-p", words(505), "-n", "20"}), {"512"});
  }
}

TEST_CASE("cli: an empty prompt is a usage error for every method", "[cli][bad-input]") {
  // Not attributed to BOS alone: perturbation methods have no unit to remove, and a gradient
  // over BOS alone explains nothing about the prompt. One rule for all, before the model loads.
  for (const char* method : {"saliency", "integrated-gradients", "occlusion", "hierarchical", "context-cite"}) {
    INFO(method);
    check_usage_error(local({"-p", "", "-n", "2", "--method", method}), "--prompt is empty");
  }
  // Standard input holding only echo's newline is empty too.
  check_usage_error(run_cli({"local", "--model", stories_dir(), "-p", "-", "-n", "2"}, "\n"), "--prompt is empty");
  // So without a BOS token, which used to fail later with another message.
  ModelCopy m;
  std::ofstream(m / "tokenizer_config.json") << R"({"add_bos_token": false})";
  check_usage_error(local({"-p", "", "-n", "2"}, m.path().string()), "--prompt is empty");
}
