// Broken model directories through `pizza generate`: each gives exit 1 and one clear stderr
// line naming the file, never a crash, a backtrace or output on stdout.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "checkpoint/broken_files.h"
#include "cli/cli_helpers.h"

using namespace pizza::test;

namespace {

CliResult generate_in(const std::filesystem::path& dir) {
  return run_cli({"generate", "--model", dir.string(), "--prompt", "hi", "-n", "4"});
}

// stories260K's config.json with the first occurrence of `from` replaced by `to`.
void edit_config(const ModelCopy& m, const std::string& from, const std::string& to) {
  auto text = slurp(m / "config.json");
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  write_bytes(m / "config.json", text.replace(at, from.size(), to));
}

}  // namespace

TEST_CASE("cli: a copied model directory works (baseline for the bad-input tests)", "[cli][bad-input]") {
  ModelCopy m;
  auto r = generate_in(m.path());
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(!r.out.empty());
}

TEST_CASE("cli: broken model.safetensors files", "[cli][bad-input]") {
  // The same broken files as the library-level tests in tests/checkpoint.
  for (const auto& c : broken_safetensors_files()) {
    DYNAMIC_SECTION(c.name) {
      ModelCopy m(false);
      write_bytes(m / "model.safetensors", c.bytes);
      check_input_error(generate_in(m.path()), {(m / "model.safetensors").string(), c.problem});
    }
  }
}

TEST_CASE("cli: missing tensor", "[cli][bad-input]") {
  ModelCopy m(false);
  write_bytes(m / "model.safetensors",
              safetensors_bytes(R"({"unrelated":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  check_input_error(generate_in(m.path()), {m.path().string(), "missing tensor 'model."});
}

TEST_CASE("cli: config.json with a missing field", "[cli][bad-input]") {
  ModelCopy m;
  edit_config(m, R"("model_type": "llama",)", "");
  check_input_error(generate_in(m.path()), {(m / "config.json").string(), "model_type", "missing"});
}

TEST_CASE("cli: config.json with an invalid field", "[cli][bad-input]") {
  ModelCopy m;
  edit_config(m, R"("num_hidden_layers": 5)", R"("num_hidden_layers": "five")");
  check_input_error(generate_in(m.path()), {(m / "config.json").string(), "num_hidden_layers", "integer"});
}

TEST_CASE("cli: config.json that is not JSON", "[cli][bad-input]") {
  ModelCopy m;
  write_bytes(m / "config.json", "{\"model_type\": \"llama\", ");
  check_input_error(generate_in(m.path()), {(m / "config.json").string(), "not valid JSON"});
}

TEST_CASE("cli: config.json disagreeing with the weights' shapes", "[cli][bad-input]") {
  // hidden_size 32 with 64-wide weights: the loader must notice rather than compute garbage.
  ModelCopy m;
  edit_config(m, R"("hidden_size": 64)", R"("hidden_size": 32)");
  edit_config(m, R"("head_dim": 8)", R"("head_dim": 4)");
  check_input_error(generate_in(m.path()), {"shape"});
}

TEST_CASE("cli: model directory without config.json", "[cli][bad-input]") {
  ModelCopy m;
  std::filesystem::remove(m / "config.json");
  check_input_error(generate_in(m.path()), {m.path().string(), "config.json"});
}

TEST_CASE("cli: model directory that does not exist", "[cli][bad-input]") {
  TempDir t;
  check_input_error(generate_in(t / "nope"), {(t / "nope").string()});
}

TEST_CASE("cli: unsupported model_type lists the supported ones", "[cli][bad-input]") {
  ModelCopy m;
  edit_config(m, R"("model_type": "llama")", R"("model_type": "not_a_model")");
  check_input_error(generate_in(m.path()),
                    {(m / "config.json").string(), "unsupported model_type 'not_a_model'", "supported:", "llama"});
}

TEST_CASE("cli: missing or broken tokenizer", "[cli][bad-input]") {
  ModelCopy m;
  std::filesystem::remove(m / "tokenizer.model");
  check_input_error(generate_in(m.path()), {m.path().string(), "tokenizer"});
  write_bytes(m / "tokenizer.model", "\xff\xff\xff");
  check_input_error(generate_in(m.path()), {(m / "tokenizer.model").string(), "sentencepiece"});
}

TEST_CASE("cli: a FIFO in place of a model file is refused at once", "[cli][bad-input]") {
  // open() on a FIFO without a writer blocks; pizza must check the file type first.
  for (const char* f : {"model.safetensors", "config.json", "tokenizer.model"}) {
    INFO("file " << f);
    ModelCopy m;
    std::filesystem::remove(m / f);
    REQUIRE(::mkfifo((m / f).c_str(), 0600) == 0);
    check_input_error(generate_in(m.path()), {(m / f).string(), "FIFO"});
  }
}

TEST_CASE("cli: a prompt that is not UTF-8 is refused with the byte offset, never reinterpreted", "[cli][bad-input]") {
  // "caf\xE9" is Latin-1: it used to be read as some other text and written back altered.
  check_input_error(run_cli({"tokenize", "--model", stories_dir(), "-p", "caf\xE9 au lait"}),
                    {"--prompt", "invalid UTF-8 at byte 3"});
  check_input_error(run_cli({"local", "--model", stories_dir(), "-p", "-", "-n", "2"}, "Once \xFF upon"),
                    {"standard input", "invalid UTF-8 at byte 5"});
  check_input_error(run_cli({"local", "--model", stories_dir(), "-p", "Once upon", "--target-text", " a \xC3"}),
                    {"--target-text", "invalid UTF-8 at byte 3"});
  TempDir dir;
  spit(dir / "prompts.txt", "Once upon a time\nLily \xE9t\xE9\n");
  check_input_error(run_cli({"local", "--model", stories_dir(), "--prompts", (dir / "prompts.txt").string(), "-n", "2"}),
                    {(dir / "prompts.txt").string() + ":2", "invalid UTF-8 at byte 5"});
}

TEST_CASE("cli: an --output that cannot be written fails before any work", "[cli][bad-input]") {
  TempDir dir;
  const auto out = (dir / "no/such/dir/out.json").string();
  auto r = run_cli({"local", "--model", stories_dir(), "-p", "Once upon a time", "-n", "2", "--output", out});
  check_input_error(r, {out});
  // The model was never loaded: a model path that does not exist is not even looked at.
  auto r2 = run_cli({"local", "--model", (dir / "absent-model").string(), "-p", "x", "--output", out});
  check_input_error(r2, {out});
  auto r3 = run_cli({"local", "--model", (dir / "absent-model").string(), "--prompts", "-", "--output", out}, "x\n");
  check_input_error(r3, {out});
}

TEST_CASE("cli: an unknown subcommand or option is named first", "[cli][bad-input]") {
  using pizza::test::check_usage_error;
  using pizza::test::run_cli;
  // CLI11 alone said "A subcommand is required" here.
  check_usage_error(run_cli({"bogus"}), "unknown subcommand 'bogus' (expected generate, tokenize, local,");
  // ... and "--model is required" here: the unknown flag is the mistake to fix first.
  check_usage_error(run_cli({"local", "--bogus"}), "unknown option --bogus for pizza local");
  check_usage_error(run_cli({"local", "-p", "x", "--bogus=3"}), "unknown option --bogus for pizza local");
  check_usage_error(run_cli({"api", "-p", "x", "--skip-special-tokens"}), "unknown option --skip-special-tokens for pizza api");
  // Known options (a negated flag, the inherited --config) leave CLI11's message.
  check_usage_error(run_cli({"local", "-p", "x", "--no-mmap", "--config", "/dev/null"}), "--model is required");
}

TEST_CASE("cli: every subcommand's help names --config and its TOML section", "[cli]") {
  for (const std::string sub : {"generate", "tokenize", "local", "serve", "api", "eval", "diff", "render", "doctor"}) {
    const auto r = pizza::test::run_cli({sub, "--help"});
    INFO(sub);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--config FILE") != std::string::npos);
    CHECK(r.out.find("[" + sub + "] section") != std::string::npos);
  }
}

TEST_CASE("cli: tokens to generate have one spelling and one default in every subcommand", "[cli]") {
  for (const std::string sub : {"local", "api", "generate", "eval"}) {
    const auto r = pizza::test::run_cli({sub, "--help"});
    INFO(sub << ": " << r.out);
    CHECK(r.out.find("-n,--max-new-tokens INT=16") != std::string::npos);
    // The former spelling still works (scripts, config files) but is not advertised.
    CHECK(r.out.find("--max-tokens") == std::string::npos);
  }
}
