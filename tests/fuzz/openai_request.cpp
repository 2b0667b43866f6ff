// libFuzzer target: `pizza serve`'s request bodies, parsed and validated as both endpoints
// (POST /v1/chat/completions and /v1/completions) against stories260K's real tokenizer, under
// one of the six chat templates (the input's size picks). A request that parses is then
// answered with a synthetic generation result, whole and as a stream, and every body and event
// must be valid JSON. Contract: success or ApiError (the client's 4xx); anything else escaping,
// or an invalid response, is a finding.
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "openai/openai.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace pizza::serve;

// stories260K's config.json: max_position_embeddings and vocab_size.
constexpr int64_t kContext = 512;
constexpr int64_t kVocab = 512;

const pizza::Tokenizer& tokenizer() {
  static const auto tok = pizza::load_tokenizer(std::filesystem::path(PIZZA_SHARED_DIR) / "models" / "stories260K");
  return *tok;
}

// The model as `pizza serve` would present stories260K, with the given chat template.
const ServedModel& served(size_t i) {
  static const auto models = [] {
    const auto& tok = tokenizer();
    std::vector<int64_t> stops{2};  // config.json's eos_token_id
    if (auto e = tok.eos_id(); e && *e != 2) stops.push_back(*e);
    std::vector<std::unique_ptr<ServedModel>> out;
    for (auto t : {ChatTemplate::llama2, ChatTemplate::llama3, ChatTemplate::chatml, ChatTemplate::gemma,
                   ChatTemplate::mistral, ChatTemplate::plain})
      out.push_back(std::make_unique<ServedModel>(ServedModel{
          .tokenizer = tok,
          .context_length = kContext,
          .vocab_size = kVocab,
          .stop_ids = stops,
          .root = PIZZA_SHARED_DIR "/models/stories260K",
          .name = "stories260K",
          .chat_template = t,
          .fingerprint = "fp_fuzz",
          .created = 1700000000,
          .max_prompt_bytes = max_prompt_bytes(tok, kContext),
      }));
    return out;
  }();
  return *models[i % models.size()];
}

[[noreturn]] void invalid(std::string_view what, std::string_view json) {
  std::fprintf(stderr, "pizza fuzz: %.*s is not valid JSON:\n%.*s\n", static_cast<int>(what.size()), what.data(),
               static_cast<int>(json.size()), json.data());
  std::abort();
}

void check_json(std::string_view what, const std::string& json) {
  static simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json).get(root)) invalid(what, json);
}

// Every `data: ...` event of a stream: [DONE] or a JSON object.
void check_events(const std::string& events) {
  size_t at = 0;
  while (at < events.size()) {
    const size_t end = events.find("\n\n", at);
    if (end == std::string::npos || events.compare(at, 6, "data: ") != 0) invalid("a stream", events);
    const auto payload = events.substr(at + 6, end - at - 6);
    if (payload != "[DONE]") check_json("a stream event", payload);
    at = end + 2;
  }
}

// A generated token's log-prob entry with `top` alternatives (one of them -inf, which the
// encoders must write as -9999: JSON has no infinity).
TokenLogprob entry(int64_t id, int top) {
  TokenLogprob e{id, -0.5, {}};
  for (int k = 0; k < top; ++k)
    e.top.emplace_back((id + k) % kVocab, k == 1 ? -std::numeric_limits<double>::infinity() : -1.0 - k);
  return e;
}

// Answers a parsed request with a made-up result: a few tokens (the prompt's first ones, then
// the stop token), their text and the log-probs the request asked for.
void answer(const ApiRequest& r, const ServedModel& model) {
  const auto& g = r.generation;
  GenerationResult res;
  for (size_t i = 0; i < std::min<size_t>(g.prompt.size(), 3); ++i) res.tokens.push_back(g.prompt[i]);
  res.tokens.push_back(2);
  const std::vector<int32_t> ids32(res.tokens.begin(), res.tokens.end());
  res.text = model.tokenizer.decode(ids32);
  res.finish = FinishReason::stop;
  if (g.logprobs)
    for (auto id : res.tokens) res.logprobs.push_back(entry(id, g.top_logprobs));
  if (g.prompt_logprobs) {
    res.prompt_logprobs.emplace_back();  // the first prompt token has none
    for (size_t i = 1; i < g.prompt.size(); ++i) res.prompt_logprobs.emplace_back(entry(g.prompt[i], g.top_logprobs));
  }
  check_json("a response body", response_body(r, res, model, "cmpl-fuzz", 1700000001));
  if (!r.stream) return;

  StreamEncoder enc(r, model, "cmpl-fuzz", 1700000001);
  std::string events = enc.start();
  if (g.prompt_logprobs) {
    StreamDelta d;
    d.prompt_logprobs = res.prompt_logprobs;
    events += enc.delta(d);
  }
  StreamDelta d;
  d.text = res.text.substr(0, final_text_length(res.text, g.stop));
  d.logprobs = res.logprobs;
  d.completion_tokens = static_cast<int64_t>(res.tokens.size());
  events += enc.delta(d);
  StreamDelta last;
  last.text = res.text.substr(d.text.size());
  last.finish = res.finish;
  last.completion_tokens = d.completion_tokens;
  events += enc.delta(last);
  check_events(events);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto body = pizza::fuzz::as_text(data, size);
  const auto& model = served(size);
  for (auto ep : {Endpoint::chat, Endpoint::completions}) {
    try {
      answer(parse_request(ep, body, model), model);
    } catch (const ApiError& e) {
      check_json("an error body", error_body(e));
      check_events(StreamEncoder::error(e));
      if (e.status < 400 || e.status > 499) {
        std::fprintf(stderr, "pizza fuzz: a request was answered %d: %s\n", e.status, e.what());
        std::abort();
      }
    }
  }
  return 0;
}
