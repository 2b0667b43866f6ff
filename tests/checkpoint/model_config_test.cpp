// config.json parsing: the stories260K config reads as written, and bad configs give one
// InputError naming config.json and the field.
#include <catch2/catch.hpp>


#include "checkpoint/broken_files.h"
#include "checkpoint/model_config.h"
#include "support/paths.h"
#include "util/error.h"

using namespace pizza;

namespace {

std::string stories_config() { return test::slurp(test::shared("models/stories260K/config.json")); }

// stories260K's config.json with the first occurrence of `from` replaced by `to`.
std::string edited_config(const std::string& from, const std::string& to) {
  auto text = stories_config();
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// load_model_config on a directory holding `config`, which must throw an InputError naming
// config.json and containing every fragment of `problem`.
void require_config_error(const std::string& config, const std::vector<std::string>& problem) {
  test::TempDir dir;
  test::write_bytes(dir / "config.json", config);
  try {
    (void)load_model_config(dir.path());
  } catch (const InputError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find((dir / "config.json").string()) != std::string::npos);
    for (const auto& p : problem) CHECK(msg.find(p) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    return;
  }
  FAIL("expected an InputError");
}

}  // namespace

TEST_CASE("model config: stories260K config.json reads as written", "[checkpoint][config]") {
  auto c = load_model_config(test::shared("models/stories260K"));
  // Values from ../shared/models/stories260K/config.json.
  CHECK(c.model_type == "llama");
  CHECK(c.vocab_size == 512);
  CHECK(c.hidden_size == 64);
  CHECK(c.intermediate_size == 172);
  CHECK(c.num_layers == 5);
  CHECK(c.num_heads == 8);
  CHECK(c.num_kv_heads == 4);
  CHECK(c.head_dim == 8);
  CHECK(c.max_position_embeddings == 512);
  CHECK(c.norm_eps == 1e-5);
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.tie_word_embeddings);
  CHECK(c.activation == Activation::silu);
  CHECK(c.bos_token_ids == std::vector<int64_t>{1});
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
  CHECK_FALSE(c.sliding_window.has_value());
}

TEST_CASE("model config: missing field", "[checkpoint][config][bad-input]") {
  require_config_error(edited_config(R"("model_type": "llama",)", ""), {"field 'model_type'", "missing"});
}

TEST_CASE("model config: invalid field", "[checkpoint][config][bad-input]") {
  require_config_error(edited_config(R"("hidden_size": 64)", R"("hidden_size": "sixty-four")"),
                       {"field 'hidden_size'", "must be an integer"});
  require_config_error(edited_config(R"("num_attention_heads": 8)", R"("num_attention_heads": 0)"),
                       {"field 'num_attention_heads'", "must be positive"});
  require_config_error(edited_config(R"("rms_norm_eps": 1e-05)", R"("rms_norm_eps": "tiny")"),
                       {"field 'rms_norm_eps'", "must be a number"});
  require_config_error(edited_config(R"("hidden_act": "silu")", R"("hidden_act": "swiglu9")"),
                       {"field 'hidden_act'", "swiglu9"});
  require_config_error(edited_config(R"("num_key_value_heads": 4)", R"("num_key_value_heads": 3)"),
                       {"field 'num_key_value_heads'", "must divide"});
  require_config_error(edited_config(R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "yarn9"})"),
                       {"field 'rope_scaling'", "yarn9"});
}

TEST_CASE("model config: scalars that would make every logit NaN are refused at load", "[checkpoint][config][bad-input]") {
  // An epsilon, rope base or rope factor of zero or below divides by zero or takes the root of
  // a negative: the model would load and answer NaN. Each is an error naming the field.
  for (const char* eps : {"0", "-1e-5"})
    require_config_error(edited_config(R"("rms_norm_eps": 1e-05)", std::string(R"("rms_norm_eps": )") + eps),
                         {"field 'rms_norm_eps'", "must be a positive number"});
  for (const char* theta : {"0", "-10000.0"})
    require_config_error(edited_config(R"("rope_theta": 10000.0)", std::string(R"("rope_theta": )") + theta),
                         {"field 'rope_theta'", "must be a positive number"});
  require_config_error(edited_config(R"("rope_scaling": null)", R"("rope_scaling": {"rope_type": "linear", "factor": 0})"),
                       {"field 'factor'", "must be a positive number"});
  require_config_error(
      edited_config(R"("rope_scaling": null)",
                    R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": -1, "high_freq_factor": 4, "original_max_position_embeddings": 8192})"),
      {"field 'low_freq_factor'", "must be a positive number"});
  // JSON has no infinity: 1e999 is refused as invalid JSON.
  require_config_error(edited_config(R"("rope_theta": 10000.0)", R"("rope_theta": 1e999)"), {"not valid JSON"});
}

TEST_CASE("model config: config.json that is not JSON", "[checkpoint][config][bad-input]") {
  require_config_error("{\"model_type\": \"llama\",", {"not valid JSON"});
  require_config_error("[1, 2]", {"not a JSON object"});
}

TEST_CASE("model config: directory without config.json", "[checkpoint][config][bad-input]") {
  test::TempDir dir;
  try {
    (void)load_model_config(dir.path());
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(dir.path().string()) != std::string::npos);
    CHECK(msg.find("no config.json") != std::string::npos);
  }
}

TEST_CASE("model config: unsupported model_type lists the supported ones", "[checkpoint][config][bad-input]") {
  const auto& types = supported_model_types();
  REQUIRE(std::find(types.begin(), types.end(), "llama") != types.end());
  std::vector<std::string> problem{"unsupported model_type 'not_a_model'", "supported:"};
  for (const auto& t : types) problem.push_back(t);
  require_config_error(edited_config(R"("model_type": "llama")", R"("model_type": "not_a_model")"), problem);
}
