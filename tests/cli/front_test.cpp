// pizza is two programs: the front end (pizza, no libtorch) runs tokenize, api, diff and render
// itself and starts the engine (pizza-engine) for the subcommands that compute with a model.
// These tests hold the split to its promises: the front end loads no libtorch or BLAS, works
// without the engine, hands over the whole command line (standard input included), and an
// installed pizza finds its engine; a missing engine is a one-line error.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>

#include "cli/cli_helpers.h"
#include "support/subprocess.h"

using namespace pizza::test;
namespace fs = std::filesystem;

namespace {

fs::path built_engine() {
  const fs::path e = fs::path(PIZZA_BINARY).parent_path() / "pizza-engine";
  REQUIRE(fs::exists(e));
  return e;
}

// The shared libraries a program loads, as the dynamic loader resolves them (ldd).
std::string loaded_libraries(const fs::path& program) {
  const ProcessResult r = run_command("ldd " + shell_quote(program.string()) + " 2>&1");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(r.output.find("libc.so") != std::string::npos);
  return r.output;
}

const std::vector<std::string> kEngineLibraries = {"libtorch", "libc10", "libblas", "libopenblas", "libgomp"};

// A dry run of word occlusion over 3 words: the original and one request per word, no server.
std::vector<std::string> api_dry_run(const std::string& prompt) {
  return {"api", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--prompt", prompt, "--unit", "word",
          "--no-cache", "--dry-run"};
}

}  // namespace

TEST_CASE("front: pizza loads no libtorch and no BLAS and pizza-engine does", "[cli][front]") {
  const std::string front = loaded_libraries(PIZZA_BINARY);
  INFO(front);
  for (const std::string& lib : kEngineLibraries) CHECK(front.find(lib) == std::string::npos);
  // The same check on the engine finds them: the test can fail.
  const std::string engine = loaded_libraries(built_engine());
  CHECK(engine.find("libtorch") != std::string::npos);
  CHECK(engine.find("libc10") != std::string::npos);
}

TEST_CASE("front: without the engine tokenize and api run and local is a one-line error naming it", "[cli][front]") {
  TempDir empty;
  const std::vector<std::string> env{"PIZZA_MODULE_DIR=" + empty.path().string()};

  // GPT-2's tokenizer is plain C++ (the sentencepiece module lives where the engine does).
  const auto tok = run_cli({"tokenize", "--tokenizer", shared("tokenizers/gpt2").string(), "-p", "Hello world"}, "", env);
  INFO("tokenize stderr: " << tok.err);
  CHECK(tok.exit_code == 0);
  CHECK(tok.out.find("Hello") != std::string::npos);

  const auto api = run_cli(api_dry_run("one two three"), "", env);
  INFO("api stderr: " << api.err);
  CHECK(api.exit_code == 0);
  CHECK(api.out.find("dry run: 4 requests") != std::string::npos);

  const auto version = run_cli({"--version"}, "", env);
  CHECK(version.exit_code == 0);
  CHECK(version.out.rfind("pizza ", 0) == 0);

  const auto help = run_cli({"--help"}, "", env);
  CHECK(help.exit_code == 0);
  for (const char* sub : {"local", "generate", "serve", "eval", "doctor", "api", "tokenize"})
    CHECK(help.out.find(std::string("  ") + sub) != std::string::npos);

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"local", "--model", stories_dir(), "-p", "Once upon a time"},
        std::vector<std::string>{"--config", (empty / "none.toml").string(), "generate", "--model", stories_dir(), "-p", "x"},
        std::vector<std::string>{"doctor"}}) {
    INFO("args[0..1]: " << args[0] << " " << args[1 % args.size()]);
    check_input_error(run_cli(args, "", env), {"pizza-engine", "was not found", empty.path().string(), "PIZZA_MODULE_DIR"});
  }
  // An api run that names --embeddings needs a model loaded, so it is handed over too.
  auto with_embeddings = api_dry_run("one two three");
  with_embeddings.insert(with_embeddings.end(), {"--embeddings", stories_dir(), "--metric", "cosine"});
  check_input_error(run_cli(with_embeddings, "", env), {"pizza-engine", "was not found"});
}

TEST_CASE("front: a run handed to the engine after reading standard input gets the same input", "[cli][front]") {
  // --prompt - with --embeddings: the front end reads the prompt, then finds it needs the
  // engine. Were standard input lost, the engine would see an empty prompt (a usage error).
  auto args = api_dry_run("-");
  args.insert(args.end(), {"--embeddings", stories_dir(), "--metric", "prob-diff,cosine"});
  const auto r = run_cli(args, "one two three\n");
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("dry run: 4 requests") != std::string::npos);
}

TEST_CASE("front: a batch from standard input handed to the engine equals the same batch from a file", "[cli][front]") {
  PizzaServe server({"--max-batch", "1"});
  TempDir dir;
  const std::string records = "{\"id\":\"a\",\"prompt\":\"Once upon a time\"}\n{\"id\":\"b\",\"prompt\":\"The cat sat\"}\n";
  spit(dir / "prompts.jsonl", records);
  const auto args = [&](const std::string& prompts) {
    return std::vector<std::string>{"api", "--base-url", server.base_url(), "--model", "stories260K", "--prompts", prompts,
                                    "--unit", "word", "-n", "3", "--metric", "prob-diff,cosine", "--embeddings", stories_dir(),
                                    "--no-cache", "--quiet"};
  };
  const auto from_stdin = run_cli(args("-"), records);
  INFO("stdin stderr: " << from_stdin.err);
  REQUIRE(from_stdin.exit_code == 0);
  const auto from_file = run_cli(args((dir / "prompts.jsonl").string()));
  INFO("file stderr: " << from_file.err);
  REQUIRE(from_file.exit_code == 0);
  CHECK(lines_of(from_stdin.out).size() == 2);
  // Timings differ between runs; the records' ids, outputs, matrices and logs must not.
  const std::regex timings(R"("timings":\{[^}]*\}|"duration_ms":[-+.e0-9]+)");
  CHECK(std::regex_replace(from_stdin.out, timings, "") == std::regex_replace(from_file.out, timings, ""));
}

TEST_CASE("front: config sections of the engine's subcommands are checked by the engine", "[cli][front]") {
  TempDir dir;
  spit(dir / "pizza.toml", "[local]\nbogus = 1\n\n[api]\nunit = \"word\"\n");
  // The front end leaves [local] to the engine: an api run is not refused for it...
  auto args = api_dry_run("one two three");
  args.insert(args.begin(), {"--config", (dir / "pizza.toml").string()});
  const auto api = run_cli(args);
  INFO("api stderr: " << api.err);
  CHECK(api.exit_code == 0);
  // ...and the engine refuses it, naming the file, section and key.
  const auto local = run_cli({"--config", (dir / "pizza.toml").string(), "local", "--model", stories_dir(), "-p", "x"});
  check_usage_error(local, "[local] bogus");
  CHECK(local.err.find("pizza.toml") != std::string::npos);
}

TEST_CASE("front: an installed pizza starts the engine in <prefix>/lib/pizza", "[cli][front]") {
  const InstalledLayout installed;
  const fs::path exe = installed.program();
  fs::copy_file(fs::path(PIZZA_BINARY).parent_path() / "libpizza_sentencepiece.so", installed.lib() / "libpizza_sentencepiece.so");
  const std::vector<std::string> args{exe.string(), "generate", "--model", stories_dir(), "-p", "Once upon a time", "-n", "4"};

  // A broken engine there is reported from there: that directory comes before the build tree.
  std::ofstream(installed.lib() / "pizza-engine") << "#!/bin/sh\necho broken engine >&2\nexit 7\n";
  fs::permissions(installed.lib() / "pizza-engine", fs::perms::owner_all);
  {
    Subprocess p(args);
    const int rc = p.wait();
    CHECK(rc == 7);
    CHECK(p.read_to_end(std::chrono::seconds(10)).find("broken engine") != std::string::npos);
  }
  fs::copy_file(built_engine(), installed.lib() / "pizza-engine", fs::copy_options::overwrite_existing);
  const auto direct = run_cli({"generate", "--model", stories_dir(), "-p", "Once upon a time", "-n", "4"});
  REQUIRE(direct.exit_code == 0);
  const ProcessResult run = run_command(shell_quote(exe.string()) + " generate --model " + shell_quote(stories_dir()) +
                                              " -p 'Once upon a time' -n 4 2>&1");
  INFO(run.output);
  CHECK(run.exit_code == 0);
  CHECK(run.output == direct.out);
}
