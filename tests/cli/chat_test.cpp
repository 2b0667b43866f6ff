// `pizza local --chat` and `pizza api --system` end to end. stories260K has no chat template
// (plain: the messages' contents one per line), so `--chat --system S -p P` must attribute
// exactly what a plain run on "S\nP" attributes, on P's columns: an independent path through
// the CLI. `pizza api --endpoint chat --system S` is checked on the requests a LoopbackServer
// receives. (The chatml template's tokens, spans and perturbations: tests/local_perturbation.)
#include <catch2/catch.hpp>

#include <simdjson.h>

#include <mutex>
#include <string>
#include <vector>

#include "cli_helpers.h"
#include "support/loopback_server.h"
#include "support/paths.h"
#include "util/json_writer.h"

using namespace pizza::test;

namespace {

struct Input {
  std::string text;
  size_t begin = 0, end = 0;
  bool special = false, generated = false;
};

struct Result {
  std::string prompt, output_text;
  std::vector<Input> inputs;
  std::vector<std::vector<double>> matrix;
  simdjson::dom::parser parser;  // owns `root`
  simdjson::dom::element root;
};

void parse(const std::string& json, Result& r) {
  r.root = r.parser.parse(json);
  r.prompt = std::string(std::string_view(r.root["prompt"]));
  r.output_text = std::string(std::string_view(r.root["output_text"]));
  for (simdjson::dom::element in : r.root["inputs"].get_array()) {
    Input i;
    i.text = std::string(std::string_view(in["text"]));
    i.begin = uint64_t(in["span"].at(0));
    i.end = uint64_t(in["span"].at(1));
    i.special = bool(in["special"]);
    i.generated = bool(in["generated"]);
    r.inputs.push_back(i);
  }
  for (simdjson::dom::element row : r.root["matrix"].get_array()) {
    r.matrix.emplace_back();
    for (simdjson::dom::element v : row.get_array()) r.matrix.back().push_back(double(v));
  }
}

std::string param(const Result& r, const char* key) {
  simdjson::dom::element v;
  if (r.root["parameters"][key].get(v)) return "absent";
  return simdjson::minify(v);
}

const std::string kSystem = "Lily";
const std::string kPrompt = "Tom went to the park";

}  // namespace

TEST_CASE("cli: local --chat on a plain-template model attributes the prompt's columns of \"SYSTEM\\nPROMPT\"", "[cli][chat]") {
  for (const std::string method : {"saliency", "occlusion"}) {
    INFO(method);
    const auto chat_run = run_cli({"local", "-m", stories_dir(), "--chat", "--system", kSystem, "-p", kPrompt, "-n", "4",
                                   "--method", method, "--format", "json", "--quiet"});
    const auto plain_run = run_cli({"local", "-m", stories_dir(), "-p", kSystem + "\n" + kPrompt, "-n", "4", "--method",
                                    method, "--format", "json", "--quiet"});
    INFO(chat_run.err << plain_run.err);
    REQUIRE(chat_run.exit_code == 0);
    REQUIRE(plain_run.exit_code == 0);
    Result chat, plain;
    parse(chat_run.out, chat);
    parse(plain_run.out, plain);
    CHECK(chat.prompt == kPrompt);  // spans refer to the user's prompt
    CHECK(chat.output_text == plain.output_text);
    CHECK(param(chat, "chat") == "true");
    CHECK(param(chat, "chat_template") == "\"plain\"");
    CHECK(param(chat, "system") == "\"Lily\"");
    CHECK(param(plain, "chat") == "absent");

    // The plain run's columns that lie in the prompt (after "Lily\n") are the chat run's
    // non-special ones, with spans shifted by the 5 bytes of "Lily\n".
    const size_t offset = kSystem.size() + 1;
    std::vector<size_t> plain_cols, chat_cols;
    for (size_t c = 0; c < plain.inputs.size(); ++c)
      if (plain.inputs[c].generated || (!plain.inputs[c].special && plain.inputs[c].begin >= offset)) plain_cols.push_back(c);
    for (size_t c = 0; c < chat.inputs.size(); ++c)
      if (!chat.inputs[c].special) chat_cols.push_back(c);
    REQUIRE(plain_cols.size() == chat_cols.size());
    std::string covered;
    for (size_t k = 0; k < chat_cols.size(); ++k) {
      const auto& a = chat.inputs[chat_cols[k]];
      const auto& b = plain.inputs[plain_cols[k]];
      INFO("column " << k);
      CHECK(a.text == b.text);
      CHECK(a.generated == b.generated);
      if (!a.generated) {
        CHECK(a.begin + offset == b.begin);
        CHECK(a.end + offset == b.end);
        covered += kPrompt.substr(a.begin, a.end - a.begin);
      }
    }
    CHECK(covered == kPrompt);  // the units cover exactly the user's text
    REQUIRE(chat.matrix.size() == plain.matrix.size());
    for (size_t row = 0; row < chat.matrix.size(); ++row)
      for (size_t k = 0; k < chat_cols.size(); ++k) {
        INFO("row " << row << " column " << k);
        CHECK(chat.matrix[row][chat_cols[k]] == Approx(plain.matrix[row][plain_cols[k]]).margin(1e-12));
      }
    if (method == "saliency") {
      // The gradient run keeps the template's tokens as special columns: BOS, "Lily", "\n".
      REQUIRE(chat.inputs.size() >= 3);
      CHECK(chat.inputs[1].special);
      CHECK(chat.inputs[1].text == "Lily");
      CHECK(chat.inputs[2].special);
      CHECK(chat.inputs[2].text == "\n");
      CHECK(chat.inputs[1].begin == 0);
      CHECK(chat.inputs[1].end == 0);
    } else {
      for (const auto& in : chat.inputs) CHECK_FALSE(in.special);  // perturbation columns: the prompt's units only
    }
  }
}

TEST_CASE("cli: local --chat --skip-special-tokens hides the template's columns", "[cli][chat]") {
  const auto r = run_cli({"local", "-m", stories_dir(), "--chat", "--system", kSystem, "-p", kPrompt, "-n", "2", "--unit",
                          "word", "--skip-special-tokens", "--format", "json", "--quiet"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Result res;
  parse(r.out, res);
  std::vector<std::string> words;
  for (const auto& in : res.inputs)
    if (!in.generated) words.push_back(in.text);
  CHECK(words == std::vector<std::string>{"Tom", " went", " to", " the", " park"});
}

TEST_CASE("cli: --system without --chat (local) or without --endpoint chat (api) is a usage error naming both", "[cli][chat]") {
  const auto local = run_cli({"local", "-m", stories_dir(), "--system", "S", "-p", kPrompt, "-n", "2"});
  check_usage_error(local, "--system needs --chat");
  const auto api = run_cli({"api", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--endpoint", "completions",
                            "--system", "S", "-p", kPrompt, "--no-cache"},
                           "", {"OPENAI_API_KEY=sk-test"});
  check_usage_error(api, "--system needs --endpoint chat");
  const auto bad = run_cli({"local", "-m", stories_dir(), "--chat-template", "jinja", "-p", kPrompt, "-n", "2"});
  check_usage_error(bad, "--chat-template");
}

TEST_CASE("cli: api --endpoint chat --system sends the system message before every (perturbed) user message", "[cli][api][chat]") {
  std::mutex mu;
  std::vector<std::string> bodies;
  LoopbackServer http(4);
  http.post("/v1/chat/completions", [&](size_t, const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard lock(mu);
      bodies.push_back(req.body);
    }
    simdjson::dom::parser parser;
    simdjson::dom::array messages = parser.parse(req.body)["messages"].get_array();
    const std::string text = "echo:" + std::string(std::string_view(messages.at(messages.size() - 1)["content"]));
    res.set_content(pizza::test::echo_chat_completion(text, "fake-model"), "application/json");
  });
  http.start();
  const std::vector<std::string> base{"api", "--base-url", http.origin() + "/v1", "--model", "fake-model", "--prompt", kPrompt,
                                      "--unit", "word", "--concurrency", "1", "--no-cache", "--format", "json", "--quiet"};

  auto with_system = base;
  with_system.insert(with_system.end(), {"--system", "Be brief."});
  const auto r = run_cli(with_system, "", {"OPENAI_API_KEY=sk-test"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Result res;
  parse(r.out, res);
  CHECK(param(res, "system") == "\"Be brief.\"");
  CHECK(res.prompt == kPrompt);
  REQUIRE(bodies.size() == 6);  // the original prompt and one per word
  std::vector<std::string> users;
  for (const auto& body : bodies) {
    INFO(body);
    simdjson::dom::parser parser;
    simdjson::dom::array messages = parser.parse(body)["messages"].get_array();
    REQUIRE(messages.size() == 2);
    CHECK(std::string_view(messages.at(0)["role"]) == "system");
    CHECK(std::string_view(messages.at(0)["content"]) == "Be brief.");
    CHECK(std::string_view(messages.at(1)["role"]) == "user");
    users.emplace_back(std::string_view(messages.at(1)["content"]));
  }
  std::sort(users.begin(), users.end());
  CHECK(users == std::vector<std::string>{"Tom to the park", "Tom went the park", "Tom went to park", "Tom went to the",
                                          "Tom went to the park", "went to the park"});

  // Without --system the request has the user's message alone, as before.
  bodies.clear();
  REQUIRE(run_cli(base, "", {"OPENAI_API_KEY=sk-test"}).exit_code == 0);
  REQUIRE_FALSE(bodies.empty());
  simdjson::dom::parser parser;
  CHECK(parser.parse(bodies[0])["messages"].get_array().size() == 1);
}

TEST_CASE("cli: --prompts records and --config files take chat, system and chat_template", "[cli][chat][batch]") {
  TempDir dir;
  spit(dir / "p.jsonl", R"({"id": "a", "prompt": "Tom went", "chat": true, "system": "Lily"}
{"id": "b", "prompt": "Tom went"}
{"id": "d", "prompt": "Tom went", "chat_template": "chatml"}
)");
  // A record with a system message but no chat is refused before the model loads.
  spit(dir / "bad.jsonl", R"({"id": "c", "prompt": "Tom went", "system": "Lily"})" "\n");
  check_usage_error(run_cli({"local", "-m", stories_dir(), "--prompts", (dir / "bad.jsonl").string(), "-n", "2", "--quiet"}),
                    "line 1 (id \"c\"): --system needs --chat");
  const auto r = run_cli({"local", "-m", stories_dir(), "--prompts", (dir / "p.jsonl").string(), "-n", "2", "--quiet"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 3);
  simdjson::dom::parser parser;
  auto a = parser.parse(lines[0]);
  CHECK(simdjson::minify(a["parameters"]["chat"]) == "true");
  CHECK(std::string_view(a["parameters"]["system"]) == "Lily");
  CHECK(std::string_view(a["parameters"]["chat_template"]) == "plain");
  CHECK(std::string_view(a["prompt"]) == "Tom went");
  auto b = parser.parse(lines[1]);
  CHECK(b["parameters"]["chat"].error() == simdjson::NO_SUCH_FIELD);
  auto d = parser.parse(lines[2]);  // --chat-template implies --chat
  CHECK(std::string_view(d["parameters"]["chat_template"]) == "chatml");

  spit(dir / "chat.toml", "[local]\nchat = true\nsystem = \"Lily\"\n");
  const auto cfg = run_cli({"--config", (dir / "chat.toml").string(), "local", "-m", stories_dir(), "-p", "Tom went", "-n",
                            "2", "--format", "json", "--quiet"});
  INFO(cfg.err);
  REQUIRE(cfg.exit_code == 0);
  auto e = parser.parse(cfg.out);
  CHECK(std::string_view(e["parameters"]["system"]) == "Lily");
}
