// `pizza local --chat` on a model with a real chat template: the qwen2 fixture's weights with a
// hand-made byte-level tokenizer whose ids are the bytes themselves, no merges, and the chatml
// markers <|im_start|> = 254 and <|im_end|> = 255 as special tokens (the fixture has 256
// embedding rows; bytes 0xFE and 0xFF, which UTF-8 text never holds, keep those ids in the
// vocabulary, which a byte-level vocabulary must cover). So every expected token id is written
// here by hand from the chatml text. Checks the rendered tokens, that units and spans cover exactly
// the user's text, that gradients equal those of the hand-tokenized conversation, and that
// perturbations never touch the template (its ids or its text).
#include "support/torch_catch.h"

#include <simdjson.h>

#include <cmath>
#include <filesystem>

#include "attribution/gradient.h"
#include "attribution/method.h"
#include "attribution/target.h"
#include "engine/chat.h"
#include "engine/local.h"
#include "engine/local_perturbation.h"
#include "perturbation/perturb.h"
#include "support/paths.h"
#include "util/json_writer.h"

using namespace pizza;
using namespace pizza::perturbation;
namespace fs = std::filesystem;

namespace {

const std::string kSystem = "Be brief.";
const std::string kPrompt = "Lily and Tom";
// The conversation as chatml spells it (Qwen2's template), written out by hand.
const std::string kPrefix = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n";
const std::string kSuffix = "<|im_end|>\n<|im_start|>assistant\n";

// GPT-2's byte-to-unicode table: the vocabulary string of byte b.
std::string byte_char(unsigned b) {
  unsigned cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    unsigned n = 0;
    for (unsigned x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Expected ids of chatml text: the markers are 254 and 255, every other byte its own value.
std::vector<int64_t> ids_by_hand(const std::string& text) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 12, "<|im_start|>") == 0) {
      ids.push_back(254);
      i += 12;
    } else if (text.compare(i, 10, "<|im_end|>") == 0) {
      ids.push_back(255);
      i += 10;
    } else {
      ids.push_back(static_cast<unsigned char>(text[i++]));
    }
  }
  return ids;
}

// A model directory: the qwen2 fixture's config and weights (linked) and the tokenizer above,
// with a tokenizer_config.json whose chat_template is Qwen2's.
class ChatmlModel {
 public:
  ChatmlModel() {
    const auto src = test::shared("fixtures/qwen2");
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors"}) fs::create_symlink(src / f, dir_ / f);
    JsonWriter vocab;
    vocab.begin_object();
    for (unsigned b = 0; b < 256; ++b) vocab.field(byte_char(b), static_cast<int64_t>(b));
    vocab.end_object();
    test::spit(dir_ / "tokenizer.json",
               R"({"version":"1.0","normalizer":null,
      "added_tokens":[{"id":254,"content":"<|im_start|>","special":true},{"id":255,"content":"<|im_end|>","special":true}],
      "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
      "post_processor":null,"decoder":{"type":"ByteLevel"},
      "model":{"type":"BPE","vocab":)" + vocab.take() + R"(,"merges":[]}})");
    test::spit(dir_ / "tokenizer_config.json",
               R"({"chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"})");
    lm_ = LanguageModel::load(dir_.path(), apply_runtime({"cpu", "float64", 2}));
  }
  const LanguageModel& lm() const { return *lm_; }

 private:
  test::TempDir dir_;
  std::unique_ptr<LanguageModel> lm_;
};

ChatOptions chat_with_system() {
  ChatOptions c;
  c.system = kSystem;
  return c;
}

}  // namespace

TEST_CASE("chat: the conversation's tokens are chatml's, and only the user's tokens have prompt spans", "[chat]") {
  ChatmlModel m;
  const auto chat = render_chat_prompt(m.lm(), kPrompt, chat_with_system());
  CHECK(chat.chat_template == serve::ChatTemplate::chatml);  // from tokenizer_config.json
  CHECK(chat.rendered == kPrefix + kPrompt + kSuffix);
  CHECK(chat.prompt == kPrompt);
  CHECK(chat.prefix() == kPrefix);
  CHECK(chat.suffix() == kSuffix);
  CHECK(chat.stop_ids == std::vector<int64_t>{255});  // generation ends at <|im_end|>

  const auto enc = encode_chat_prompt(m.lm().tokenizer(), chat);
  std::vector<int64_t> ids;
  for (const auto& t : enc.tokens) ids.push_back(t.id);
  CHECK(ids == ids_by_hand(kPrefix + kPrompt + kSuffix));
  // Template tokens: special, with empty spans at the prompt's start (before it) or end (after).
  const size_t before = ids_by_hand(kPrefix).size(), after = ids_by_hand(kSuffix).size();
  REQUIRE(enc.tokens.size() == before + kPrompt.size() + after);
  std::string covered;
  for (size_t i = 0; i < enc.tokens.size(); ++i) {
    const auto& t = enc.tokens[i];
    INFO("token " << i);
    const bool user = i >= before && i < before + kPrompt.size();
    CHECK(t.special == !user);
    if (user) {
      CHECK(t.begin == i - before);  // one byte per token, in order
      covered += kPrompt.substr(t.begin, t.end - t.begin);
    } else {
      CHECK(t.begin == t.end);
      CHECK(t.begin == (i < before ? 0 : kPrompt.size()));
    }
  }
  CHECK(covered == kPrompt);
}

TEST_CASE("chat: gradient attribution equals the hand-tokenized conversation's, on the user's columns", "[chat]") {
  ChatmlModel m;
  LocalRequest req;
  req.prompt = kPrompt;
  req.chat = chat_with_system();
  req.max_new_tokens = 4;
  req.unit.kind = UnitKind::word;
  req.skip_special = true;
  const auto r = run_local_gradient(m.lm(), req);

  // Columns: the user's three words, then the earlier generated tokens; no template column.
  REQUIRE(r.outputs.size() == 4);
  REQUIRE(r.inputs.size() == 3 + 4);
  CHECK(r.text == kPrompt);
  CHECK(r.inputs[0].text == "Lily");
  CHECK(r.inputs[1].text == " and");
  CHECK(r.inputs[2].text == " Tom");
  CHECK(r.inputs[2].begin == 8);
  CHECK(r.inputs[2].end == 12);
  for (const auto& u : r.inputs) CHECK_FALSE(u.special);
  const auto param = [&](const std::string& k) {
    for (const auto& [key, v] : r.parameters)
      if (key == k) return v;
    return std::string("absent");
  };
  CHECK(param("chat") == "true");
  CHECK(param("chat_template") == "\"chatml\"");
  CHECK(param("system") == "\"Be brief.\"");

  // The independent path: the chatml text tokenized by hand, the same outputs, one gradient run.
  const auto ids = ids_by_hand(kPrefix + kPrompt + kSuffix);
  GradientRequest gr;
  gr.prompt = ids;
  for (const auto& o : r.outputs) gr.outputs.push_back(o.id);
  gr.method = find_gradient_method("saliency");
  gr.target = &find_target("prob");
  const auto ga = attribute_gradients(m.lm().model(), gr);
  const size_t P = ids.size(), start = ids_by_hand(kPrefix).size();
  // The words' token columns in the conversation: "Lily" 0..4, " and" 4..8, " Tom" 8..12.
  const std::vector<std::pair<size_t, size_t>> words{{0, 4}, {4, 8}, {8, 12}};
  const auto& mat = r.matrices.at(0);
  for (size_t row = 0; row < 4; ++row) {
    for (size_t w = 0; w < 3; ++w) {
      double sum = 0;
      for (size_t c = start + words[w].first; c < start + words[w].second; ++c) sum += ga.scores[row][c].item<double>();
      INFO("row " << row << " word " << w);
      CHECK(mat.at(row, w) == Approx(sum).epsilon(1e-12).margin(1e-15));
    }
    for (size_t g = 0; g < 4; ++g) CHECK(mat.at(row, 3 + g) == Approx(ga.scores[row][P + g].item<double>()).margin(1e-15));
  }
  // A template column carries gradient too (the model reads the template), which the result
  // leaves out: the sum over the user's columns is not the whole row.
  double template_mass = 0;
  for (size_t c = 0; c < start; ++c) template_mass += ga.scores[0][c].item<double>();
  CHECK(template_mass > 0);

  // Without --skip-special-tokens the template's tokens are special columns, in place.
  req.skip_special = false;
  req.unit.kind = UnitKind::token;
  const auto all = run_local_gradient(m.lm(), req);
  REQUIRE(all.inputs.size() == P + 4);
  for (size_t c = 0; c < P; ++c) CHECK(all.inputs[c].special == (c < start || c >= start + kPrompt.size()));
  CHECK(all.inputs[0].text == "<|im_start|>");
  CHECK(all.inputs[1].text == "s");
}

TEST_CASE("chat: perturbations change only the user's text, never the template's tokens", "[chat]") {
  ChatmlModel m;
  const auto full = ids_by_hand(kPrefix + kPrompt + kSuffix);
  const size_t start = ids_by_hand(kPrefix).size(), after = ids_by_hand(kSuffix).size();
  StrategySpec remove, fixed, mask;
  fixed.kind = Strategy::fixed;
  fixed.replacement = "Bob";
  mask.kind = Strategy::mask;
  for (const auto& strategy : {remove, fixed, mask}) {
    INFO(strategy_name(strategy.kind));
    LocalPerturbationRequest req;
    req.prompt = kPrompt;
    req.chat = chat_with_system();
    req.max_new_tokens = 3;
    req.unit.kind = UnitKind::word;
    req.strategy = strategy;
    req.engine.metrics = {Metric::logprob_diff};
    const auto r = run_local_perturbation(m.lm(), req);
    REQUIRE(r.inputs.size() == 3);  // the user's words only
    CHECK(r.inputs[0].text == "Lily");
    CHECK(r.inputs[2].text == " Tom");

    // The experiment log: the template surrounds every perturbed prompt unchanged.
    simdjson::dom::parser parser;
    std::string log;
    for (const auto& [k, v] : r.extra_json)
      if (k == "experiment_log") log = v;
    const simdjson::dom::element doc = parser.parse(log);
    CHECK(std::string_view(doc["original_input"]) == kPrefix + kPrompt + kSuffix);
    size_t n = 0;
    for (simdjson::dom::element e : doc["perturbations"].get_array()) {
      const std::string text{std::string_view(e["perturbed_input"])};
      INFO(text);
      CHECK(text.starts_with(kPrefix));
      CHECK(text.ends_with(kSuffix));
      CHECK(text != kPrefix + kPrompt + kSuffix);
      ++n;
    }
    CHECK(n == 3);

    // Delete's teacher-forced scores against brute force on hand-built ids: the conversation
    // with word w's tokens removed and the template's kept (float64: exact up to rounding).
    if (strategy.kind == Strategy::remove) {
      const std::vector<std::pair<size_t, size_t>> words{{0, 4}, {4, 8}, {8, 12}};
      std::vector<int64_t> outputs;
      for (const auto& o : r.outputs) outputs.push_back(o.id);
      auto logprobs = [&](const std::vector<int64_t>& prompt) {
        torch::NoGradGuard ng;
        std::vector<int64_t> seq = prompt;
        seq.insert(seq.end(), outputs.begin(), outputs.end() - 1);
        const auto& model = m.lm().model();
        auto lp = torch::log_softmax(model.forward(model.embed(torch::tensor(seq, torch::kLong).view({1, -1})))[0], -1);
        std::vector<double> out;
        for (size_t i = 0; i < outputs.size(); ++i) out.push_back(lp[static_cast<int64_t>(prompt.size() - 1 + i)][outputs[i]].item<double>());
        return out;
      };
      const auto base = logprobs(full);
      for (size_t w = 0; w < 3; ++w) {
        std::vector<int64_t> pert;
        for (size_t t = 0; t < full.size(); ++t)
          if (t < start + words[w].first || t >= start + words[w].second) pert.push_back(full[t]);
        const auto lp = logprobs(pert);
        for (size_t o = 0; o < outputs.size(); ++o) {
          INFO("word " << w << " output " << o);
          CHECK(r.matrices[0].at(o, w) == Approx(base[o] - lp[o]).margin(1e-10));
        }
      }
    }
  }

  // The token ids every perturbed prompt carries: the template's, unchanged, around the user's.
  const auto chat = render_chat_prompt(m.lm(), kPrompt, chat_with_system());
  UnitSpec token;
  auto units = make_units(chat.prompt, encode_chat_prompt(m.lm().tokenizer(), chat).tokens, token);
  units.prefix = chat.prefix();
  units.suffix = chat.suffix();
  REQUIRE(units.units.size() == kPrompt.size());  // one unit per user byte-token, none of the template's
  for (const auto& strategy : {remove, fixed, mask}) {
    Perturber p(units, strategy, &m.lm().tokenizer(), nullptr, false, std::nullopt);
    for (size_t u = 0; u < units.units.size(); ++u) {
      INFO(strategy_name(strategy.kind) << " unit " << u);
      const std::vector<size_t> one{u};
      const auto prompt = p.perturb(one);
      REQUIRE(prompt.token_ids);
      const auto& got = *prompt.token_ids;
      REQUIRE(got.size() >= start + after);
      CHECK(std::equal(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(start), got.begin()));
      CHECK(std::equal(full.end() - static_cast<std::ptrdiff_t>(after), full.end(), got.end() - static_cast<std::ptrdiff_t>(after)));
      if (prompt.attention_mask)
        for (size_t t = 0; t < got.size(); ++t)
          CHECK((*prompt.attention_mask)[t] == (t != start + u));
    }
  }
}
