#include "openai/openai.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "util/checked_math.h"
#include "util/error.h"
#include "util/json_writer.h"
#include "util/utf8.h"

namespace pizza::serve {

namespace {

using Element = simdjson::dom::element;
using Fields = std::map<std::string, Element, std::less<>>;

constexpr int kMaxTopLogprobs = 20;
constexpr size_t kMaxStops = 4;  // as OpenAI

std::string_view type_name(const Element& e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64: return "an integer";
    case simdjson::dom::element_type::DOUBLE: return "a number";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "a value";
}

[[noreturn]] void invalid_type(std::string_view param, std::string_view expected, const Element& got) {
  throw ApiError(400,
                 "Invalid type for '" + std::string(param) + "': expected " + std::string(expected) + ", but got " +
                     std::string(type_name(got)) + " instead.",
                 std::string(param), "invalid_type");
}

[[noreturn]] void invalid_value(std::string_view param, const std::string& message) {
  throw ApiError(400, "Invalid value for '" + std::string(param) + "': " + message, std::string(param), "invalid_value");
}

// The request's top-level fields; any field outside `allowed` is rejected by name.
Fields collect_fields(const Element& root, std::initializer_list<std::string_view> allowed) {
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) throw ApiError(400, "The request body must be a JSON object.", "", "invalid_json");
  Fields fields;
  for (auto [key, value] : obj) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw ApiError(400, "Unrecognized request argument supplied: " + std::string(key), std::string(key), "unknown_parameter");
    fields.insert_or_assign(std::string(key), value);
  }
  return fields;
}

// A present, non-null field (OpenAI treats null as "not given").
std::optional<Element> field(const Fields& f, std::string_view name) {
  auto it = f.find(name);
  if (it == f.end() || it->second.is_null()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> opt_int(const Fields& f, std::string_view name, int64_t min, int64_t max) {
  auto e = field(f, name);
  if (!e) return std::nullopt;
  int64_t v = 0;
  if (e->is_uint64() && !e->is_int64()) {
    v = INT64_MAX;  // beyond int64: certainly above any maximum we accept
  } else if (e->get_int64().get(v)) {
    invalid_type(name, "an integer", *e);
  }
  const std::string p(name);
  if (v < min)
    throw ApiError(400, "Invalid '" + p + "': integer below minimum value. Expected a value >= " + std::to_string(min) +
                            ", but got " + std::to_string(v) + " instead.", p, "integer_below_min_value");
  if (v > max)
    throw ApiError(400, "Invalid '" + p + "': integer above maximum value. Expected a value <= " + std::to_string(max) +
                            ", but got " + (v == INT64_MAX ? std::string(simdjson::minify(*e)) : std::to_string(v)) +
                            " instead.", p, "integer_above_max_value");
  return v;
}

std::optional<double> opt_number(const Fields& f, std::string_view name, double min, double max) {
  auto e = field(f, name);
  if (!e) return std::nullopt;
  double v = 0;
  if (!e->is_number() || e->get_double().get(v)) invalid_type(name, "a number", *e);
  const std::string p(name);
  if (v < min)
    throw ApiError(400, "Invalid '" + p + "': decimal below minimum value. Expected a value >= " + format_number_text(min) +
                            ", but got " + format_number_text(v) + " instead.", p, "decimal_below_min_value");
  if (v > max)
    throw ApiError(400, "Invalid '" + p + "': decimal above maximum value. Expected a value <= " + format_number_text(max) +
                            ", but got " + format_number_text(v) + " instead.", p, "decimal_above_max_value");
  return v;
}

std::optional<bool> opt_bool(const Fields& f, std::string_view name) {
  auto e = field(f, name);
  if (!e) return std::nullopt;
  bool v = false;
  if (e->get_bool().get(v)) invalid_type(name, "a boolean", *e);
  return v;
}

std::string require_string(const Element& e, std::string_view param) {
  std::string_view s;
  if (e.get_string().get(s)) invalid_type(param, "a string", e);
  return std::string(s);
}

void check_model(const Fields& f, const ServedModel& model) {
  auto e = field(f, "model");
  if (!e) throw ApiError(400, "You must provide a model parameter.", "model", "missing_required_parameter");
  auto name = require_string(*e, "model");
  if (name != model.name)
    throw ApiError(404, "The model `" + name + "` does not exist. This server serves `" + model.name + "`.", "model",
                   "model_not_found");
}

std::vector<std::string> parse_stop(const Fields& f) {
  auto e = field(f, "stop");
  if (!e) return {};
  std::vector<std::string> stops;
  if (e->is_string()) {
    stops.push_back(require_string(*e, "stop"));
  } else if (e->is_array()) {
    for (auto s : e->get_array()) stops.push_back(require_string(s, "stop"));
  } else {
    invalid_type("stop", "a string or an array of strings", *e);
  }
  if (std::any_of(stops.begin(), stops.end(), [](const std::string& s) { return s.empty(); }))
    invalid_value("stop", "stop strings must not be empty.");
  if (stops.size() > kMaxStops)
    invalid_value("stop", "at most " + std::to_string(kMaxStops) + " stop sequences are allowed, got " +
                              std::to_string(stops.size()) + ".");
  return stops;
}

// Fields every endpoint shares: sampling, stop, n, streaming.
void parse_common(const Fields& f, ApiRequest& r) {
  auto& g = r.generation;
  // OpenAI's default temperature is 1; 0 selects greedy decoding.
  g.temperature = opt_number(f, "temperature", 0.0, 2.0).value_or(1.0);
  g.top_p = opt_number(f, "top_p", 0.0, 1.0).value_or(1.0);
  if (auto seed = opt_int(f, "seed", INT64_MIN, INT64_MAX)) {
    g.seed = static_cast<uint64_t>(*seed);
  } else {
    g.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  g.stop = parse_stop(f);
  r.n = opt_int(f, "n", 1, 128).value_or(1);
  // Greedy choices are identical, so one generation answers them all; sampled ones would each
  // need a generation of their own, which pizza serve does not run.
  if (r.n > 1 && g.temperature > 0)
    invalid_value("n", "n > 1 is only supported with temperature 0 (identical greedy choices), got n = " +
                           std::to_string(r.n) + " with temperature " + format_number_text(g.temperature) + ".");
  r.stream = opt_bool(f, "stream").value_or(false);
  if (auto so = field(f, "stream_options")) {
    if (!r.stream) invalid_value("stream_options", "'stream_options' is only allowed when 'stream' is true.");
    simdjson::dom::object obj;
    if (so->get_object().get(obj)) invalid_type("stream_options", "an object", *so);
    for (auto [key, value] : obj) {
      const std::string param = "stream_options." + std::string(key);
      if (key != "include_usage")
        throw ApiError(400, "Unrecognized request argument supplied: " + param, param, "unknown_parameter");
      if (!value.is_null() && value.get_bool().get(r.include_usage)) invalid_type(param, "a boolean", value);
    }
  }
}

// Chat content: a string, or an array of {"type": "text", "text": ...} parts.
std::string parse_content(const Element& e, const std::string& param) {
  if (e.is_string()) return require_string(e, param);
  if (e.is_null()) return {};
  if (!e.is_array()) invalid_type(param, "a string or an array of content parts", e);
  std::string text;
  for (auto part : e.get_array()) {
    simdjson::dom::object obj;
    if (part.get_object().get(obj)) invalid_type(param, "an array of content parts", part);
    std::string_view type, t;
    if (obj["type"].get_string().get(type) || type != "text" || obj["text"].get_string().get(t))
      invalid_value(param, "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported.");
    text += t;
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const Fields& f) {
  auto e = field(f, "messages");
  if (!e) throw ApiError(400, "Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
  simdjson::dom::array arr;
  if (e->get_array().get(arr)) invalid_type("messages", "an array", *e);
  std::vector<ChatMessage> out;
  for (auto m : arr) {
    const std::string param = "messages[" + std::to_string(out.size()) + "]";
    simdjson::dom::object obj;
    if (m.get_object().get(obj)) invalid_type(param, "an object", m);
    ChatMessage msg;
    bool has_role = false;
    for (auto [key, value] : obj) {
      if (key == "role") {
        msg.role = require_string(value, param + ".role");
        has_role = true;
      } else if (key == "content") {
        msg.content = parse_content(value, param + ".content");
      } else if (key == "name") {
        require_string(value, param + ".name");  // accepted and ignored, as by most templates
      } else {
        throw ApiError(400, "Unrecognized request argument supplied: " + param + "." + std::string(key),
                       param + "." + std::string(key), "unknown_parameter");
      }
    }
    if (!has_role) throw ApiError(400, "Missing required parameter: '" + param + ".role'.", param + ".role", "missing_required_parameter");
    if (msg.role == "developer") msg.role = "system";
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
      invalid_value(param + ".role", "'" + msg.role + "' is not one of 'system', 'developer', 'user', 'assistant'.");
    out.push_back(std::move(msg));
  }
  if (out.empty()) invalid_value("messages", "at least one message is required.");
  return out;
}

// Tokenizes a prompt; a text longer than any prompt that fits the context is refused first, so
// a 50 MB prompt costs a comparison, not gigabytes of tokens.
std::vector<int64_t> encode(const ServedModel& model, const std::string& text, bool parse_special,
                            std::string_view what) {
  if (model.max_prompt_bytes > 0 && text.size() > model.max_prompt_bytes)
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(model.context_length) +
                       " tokens. However, your " + std::string(what) + " is " + std::to_string(text.size()) +
                       " bytes, more than any text of that many tokens can be (" +
                       std::to_string(model.max_prompt_bytes) + " bytes).",
                   std::string(what), "context_length_exceeded");
  const auto& tok = model.tokenizer;
  EncodeOptions eo;
  eo.parse_special = parse_special;
  auto ids = tok.encode(text, eo).ids();
  return {ids.begin(), ids.end()};
}

// Prompt: a string or a list of token ids (one prompt: n = 1).
void parse_prompt(const Fields& f, const ServedModel& model, ApiRequest& r) {
  auto e = field(f, "prompt");
  if (!e) throw ApiError(400, "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
  const auto& tok = model.tokenizer;
  if (e->is_string()) {
    r.prompt_text = require_string(*e, "prompt");
    r.generation.prompt = encode(model, r.prompt_text, false, "prompt");
  } else if (e->is_array()) {
    const auto vocab = model.vocab_size;
    for (auto id : e->get_array()) {
      int64_t v = 0;
      if (id.get_int64().get(v))
        invalid_value("prompt", "expected a string or a list of token ids; batches of prompts are not supported.");
      if (v < 0 || v >= vocab)
        invalid_value("prompt", "token id " + std::to_string(v) + " is outside the vocabulary [0, " + std::to_string(vocab) + ").");
      r.generation.prompt.push_back(v);
    }
    std::vector<int32_t> ids32(r.generation.prompt.begin(), r.generation.prompt.end());
    r.prompt_text = tok.decode(ids32);
  } else {
    invalid_type("prompt", "a string or a list of token ids", *e);
  }
  if (r.generation.prompt.empty()) invalid_value("prompt", "the prompt encodes to no tokens.");
}

void check_context(const ServedModel& model, const GenerationRequest& g, std::string_view what) {
  const int64_t max = model.context_length;
  const auto plen = static_cast<int64_t>(g.prompt.size());
  if (!fits_within(plen, g.max_tokens, max))
    throw ApiError(400,
                   "This model's maximum context length is " + std::to_string(max) + " tokens. However, you requested " +
                       std::to_string(saturating_add(plen, g.max_tokens)) + " tokens (" + std::to_string(plen) + " in the " +
                       std::string(what) + ", " + std::to_string(g.max_tokens) + " in the completion).",
                   std::string(what), "context_length_exceeded");
}

ApiRequest parse_chat(const Fields& f, const ServedModel& model) {
  ApiRequest r;
  r.endpoint = Endpoint::chat;
  auto& g = r.generation;
  check_model(f, model);
  auto rendered = render_chat(model.chat_template, parse_messages(f));
  const auto& tok = model.tokenizer;
  g.prompt = encode(model, rendered.text, rendered.parse_special, "messages");
  if (g.prompt.empty()) invalid_value("messages", "the conversation encodes to no tokens.");
  g.stop_ids = model.stop_ids;
  if (rendered.end_of_turn)
    if (auto id = special_token_id(tok, *rendered.end_of_turn)) g.stop_ids.push_back(*id);
  parse_common(f, r);
  r.logprobs = opt_bool(f, "logprobs").value_or(false);
  auto top = opt_int(f, "top_logprobs", 0, kMaxTopLogprobs);
  if (top && !r.logprobs) invalid_value("top_logprobs", "'logprobs' must be set to true when 'top_logprobs' is given.");
  g.top_logprobs = static_cast<int>(top.value_or(0));
  g.logprobs = r.logprobs;
  const int64_t max = model.context_length;
  auto max_tokens = opt_int(f, "max_completion_tokens", 0, INT64_MAX);
  if (!max_tokens) max_tokens = opt_int(f, "max_tokens", 0, INT64_MAX);
  // Without a limit a reply may fill the context window (as vLLM does).
  g.max_tokens = max_tokens.value_or(std::max<int64_t>(0, max - static_cast<int64_t>(g.prompt.size())));
  check_context(model, g, "messages");
  return r;
}

ApiRequest parse_completion(const Fields& f, const ServedModel& model) {
  ApiRequest r;
  r.endpoint = Endpoint::completions;
  auto& g = r.generation;
  check_model(f, model);
  parse_prompt(f, model, r);
  g.stop_ids = model.stop_ids;
  parse_common(f, r);
  auto lp = opt_int(f, "logprobs", 0, kMaxTopLogprobs);
  r.logprobs = lp.has_value();
  g.logprobs = r.logprobs;
  g.top_logprobs = static_cast<int>(lp.value_or(0));
  r.echo = opt_bool(f, "echo").value_or(false);
  g.prompt_logprobs = r.echo && r.logprobs;
  g.max_tokens = opt_int(f, "max_tokens", 0, INT64_MAX).value_or(16);  // OpenAI's default
  check_context(model, g, "prompt");
  return r;
}

// A token as clients see it: its bytes (special tokens have none and show their piece).
std::string token_string(const Tokenizer& tok, int64_t id) {
  const auto i = static_cast<int32_t>(id);
  return tok.is_special(i) ? tok.piece(i) : tok.token_bytes(i);
}

// Characters (code points) in a UTF-8 string.
int64_t char_count(std::string_view s) { return static_cast<int64_t>(utf8_code_points(s)); }

void write_bytes(JsonWriter& w, std::string_view s) {
  w.key("bytes").begin_array();
  for (char c : s) w.value(static_cast<int64_t>(static_cast<unsigned char>(c)));
  w.end_array();
}

// Log-probs can be -inf (a token masked to zero probability); OpenAI reports those as -9999.
double finite(double lp) { return std::isfinite(lp) ? lp : -9999.0; }

// The generated tokens that get log-prob entries: all but a final stop token, which is not
// part of the text.
std::span<const TokenLogprob> reported(const GenerationRequest& g, const GenerationResult& res) {
  std::span<const TokenLogprob> lps = res.logprobs;
  if (!lps.empty() && std::find(g.stop_ids.begin(), g.stop_ids.end(), lps.back().id) != g.stop_ids.end())
    lps = lps.first(lps.size() - 1);
  return lps;
}

void write_chat_logprobs(JsonWriter& w, const Tokenizer& tok, std::span<const TokenLogprob> lps) {
  w.begin_object().key("content").begin_array();
  for (const auto& e : lps) {
    const auto s = token_string(tok, e.id);
    w.begin_object().field("token", s).field("logprob", finite(e.logprob));
    write_bytes(w, s);
    w.key("top_logprobs").begin_array();
    for (const auto& [id, lp] : e.top) {
      const auto t = token_string(tok, id);
      w.begin_object().field("token", t).field("logprob", finite(lp));
      write_bytes(w, t);
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_array().key("refusal").null().end_object();
}

// vLLM's completions log-probs: parallel lists; top_logprobs maps token -> log-prob for the k
// best plus the chosen token; the first prompt token (echo) has null entries.
// `offset`: characters before the first token (a stream's earlier chunks); advanced past these.
void write_completion_logprobs(JsonWriter& w, const Tokenizer& tok, std::span<const std::optional<TokenLogprob>> entries,
                               std::span<const int64_t> ids, int64_t& offset) {
  std::vector<std::string> strings;
  for (auto id : ids) strings.push_back(token_string(tok, id));
  w.begin_object().key("tokens").begin_array();
  for (const auto& s : strings) w.value(s);
  w.end_array().key("token_logprobs").begin_array();
  for (const auto& e : entries) e ? w.value(finite(e->logprob)) : w.null();
  w.end_array().key("top_logprobs").begin_array();
  for (const auto& e : entries) {
    if (!e) {
      w.null();
      continue;
    }
    std::set<std::string> seen;  // distinct ids can share a spelling; keep the best one
    w.begin_object();
    for (const auto& [id, lp] : e->top)
      if (auto s = token_string(tok, id); seen.insert(s).second) w.field(s, finite(lp));
    if (auto s = token_string(tok, e->id); seen.insert(s).second) w.field(s, finite(e->logprob));
    w.end_object();
  }
  w.end_array().key("text_offset").begin_array();
  for (const auto& s : strings) {
    w.value(offset);
    offset += char_count(s);
  }
  w.end_array().end_object();
}

void write_head(JsonWriter& w, std::string_view id, std::string_view object, int64_t created, const ServedModel& model) {
  w.field("id", id).field("object", object).field("created", created).field("model", model.name);
  w.field("system_fingerprint", model.fingerprint);
}

// Completion tokens count every choice's tokens, as OpenAI bills them.
void write_usage(JsonWriter& w, const ApiRequest& r, int64_t generated) {
  const auto p = static_cast<int64_t>(r.generation.prompt.size()), c = generated * r.n;
  w.key("usage").begin_object().field("prompt_tokens", p).field("completion_tokens", c).field("total_tokens", p + c).end_object();
}

std::string_view finish_name(FinishReason f) {
  switch (f) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::cancelled: break;  // its client has gone: never written
  }
  return "cancelled";
}

std::vector<int64_t> ids_of(std::span<const TokenLogprob> lps) {
  std::vector<int64_t> ids;
  for (const auto& e : lps) ids.push_back(e.id);
  return ids;
}

}  // namespace

size_t max_prompt_bytes(const Tokenizer& tok, int64_t context_length) {
  size_t longest = 1;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) longest = std::max(longest, tok.token_bytes(id).size());
  return static_cast<size_t>(context_length) * longest;
}

std::string error_body(const ApiError& e) {
  JsonWriter w;
  w.begin_object().key("error").begin_object().field("message", std::string_view(e.what())).field("type", e.type);
  w.key("param");
  e.param.empty() ? w.null() : w.value(e.param);
  w.key("code");
  e.code.empty() ? w.null() : w.value(e.code);
  w.end_object().end_object();
  return w.take();
}

ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ServedModel& model) {
  simdjson::dom::parser parser;
  simdjson::padded_string padded(body);
  Element root;
  if (auto err = parser.parse(padded).get(root))
    throw ApiError(400, std::string("We could not parse the JSON body of your request: ") + simdjson::error_message(err),
                   "", "invalid_json");
  try {
    if (endpoint == Endpoint::chat)
      return parse_chat(collect_fields(root, {"model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                                              "top_p", "seed", "stop", "n", "stream", "stream_options", "logprobs",
                                              "top_logprobs"}),
                        model);
    return parse_completion(collect_fields(root, {"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop",
                                                  "n", "stream", "stream_options", "logprobs", "echo"}),
                            model);
  } catch (const InputError& e) {  // e.g. the tokenizer rejecting the text
    throw ApiError(400, e.what());
  }
}

std::string response_body(const ApiRequest& request, const GenerationResult& result, const ServedModel& model,
                          std::string_view id, int64_t created) {
  const auto& tok = model.tokenizer;
  const auto& g = request.generation;
  JsonWriter w;
  w.begin_object();
  write_head(w, id, request.endpoint == Endpoint::chat ? "chat.completion" : "text_completion", created, model);
  w.key("choices").begin_array();
  for (int64_t i = 0; i < request.n; ++i) {
    w.begin_object().field("index", i);
    if (request.endpoint == Endpoint::chat) {
      w.key("message").begin_object().field("role", "assistant").field("content", result.text);
      w.key("refusal").null().end_object();
      w.key("logprobs");
      request.logprobs ? write_chat_logprobs(w, tok, reported(g, result)) : void(w.null());
    } else {
      w.field("text", request.echo ? request.prompt_text + result.text : result.text);
      w.key("logprobs");
      if (request.logprobs) {
        std::vector<std::optional<TokenLogprob>> entries;
        std::vector<int64_t> ids;
        if (request.echo) {
          entries = result.prompt_logprobs;
          ids = g.prompt;
        }
        for (const auto& e : reported(g, result)) {
          entries.emplace_back(e);
          ids.push_back(e.id);
        }
        int64_t offset = 0;
        write_completion_logprobs(w, tok, entries, ids, offset);
      } else {
        w.null();
      }
    }
    w.field("finish_reason", finish_name(result.finish)).end_object();
  }
  w.end_array();
  write_usage(w, request, static_cast<int64_t>(result.tokens.size()));
  w.end_object();
  return w.take();
}

StreamEncoder::StreamEncoder(const ApiRequest& request, const ServedModel& model, std::string id, int64_t created)
    : request_(request), model_(model), id_(std::move(id)), created_(created) {}

std::string StreamEncoder::event(const std::function<void(JsonWriter&)>& choice) const {
  std::string out;
  for (int64_t i = 0; i < request_.n; ++i) {
    JsonWriter w;
    w.begin_object();
    write_head(w, id_, request_.endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion", created_, model_);
    w.key("choices").begin_array().begin_object().field("index", i);
    choice(w);
    w.end_object().end_array();
    if (request_.include_usage) w.key("usage").null();  // as OpenAI: null on every chunk but the last
    w.end_object();
    out += "data: " + w.take() + "\n\n";
  }
  return out;
}

std::string StreamEncoder::start() {
  if (request_.endpoint == Endpoint::chat)
    return event([](JsonWriter& w) {
      w.key("delta").begin_object().field("role", "assistant").field("content", "").end_object();
      w.key("logprobs").null().key("finish_reason").null();
    });
  // Echo without log-probs needs nothing from the engine; with them it waits for the prompt's.
  if (request_.echo && !request_.logprobs) {
    return event([&](JsonWriter& w) { w.field("text", request_.prompt_text).key("logprobs").null().key("finish_reason").null(); });
  }
  return {};
}

std::string StreamEncoder::delta(const StreamDelta& d) {
  const auto& tok = model_.tokenizer;
  const bool chat = request_.endpoint == Endpoint::chat;
  std::string out;
  if (!d.prompt_logprobs.empty() && !chat && request_.echo) {
    // Each choice's chunk must report the same offsets: compute them once, reuse the JSON.
    JsonWriter lw;
    write_completion_logprobs(lw, tok, d.prompt_logprobs, request_.generation.prompt, text_offset_);
    const auto lps = lw.take();
    out += event([&](JsonWriter& w) { w.field("text", request_.prompt_text).key("logprobs").raw(lps).key("finish_reason").null(); });
  }
  const bool with_logprobs = request_.logprobs && !d.logprobs.empty();
  if (!d.text.empty() || with_logprobs) {
    std::string lps = "null";
    if (with_logprobs) {
      JsonWriter lw;
      if (chat) {
        write_chat_logprobs(lw, tok, d.logprobs);
      } else {
        std::vector<std::optional<TokenLogprob>> entries(d.logprobs.begin(), d.logprobs.end());
        write_completion_logprobs(lw, tok, entries, ids_of(d.logprobs), text_offset_);
      }
      lps = lw.take();
    }
    out += event([&](JsonWriter& w) {
      if (chat) {
        w.key("delta").begin_object().field("content", d.text).end_object();
      } else {
        w.field("text", d.text);
      }
      w.key("logprobs").raw(lps).key("finish_reason").null();
    });
  }
  if (!d.finish) return out;
  out += event([&](JsonWriter& w) {
    chat ? void(w.key("delta").begin_object().end_object()) : void(w.field("text", ""));
    w.key("logprobs").null().field("finish_reason", finish_name(*d.finish));
  });
  if (request_.include_usage) {
    JsonWriter w;
    w.begin_object();
    write_head(w, id_, chat ? "chat.completion.chunk" : "text_completion", created_, model_);
    w.key("choices").begin_array().end_array();
    write_usage(w, request_, d.completion_tokens);
    w.end_object();
    out += "data: " + w.take() + "\n\n";
  }
  return out + "data: [DONE]\n\n";
}

std::string StreamEncoder::error(const ApiError& e) { return "data: " + error_body(e) + "\n\n"; }

std::string model_body(const ServedModel& model) {
  JsonWriter w;
  w.begin_object().field("id", model.name).field("object", "model").field("created", model.created);
  w.field("owned_by", "pizza").field("root", model.root).end_object();
  return w.take();
}

std::string models_body(const ServedModel& model) {
  JsonWriter w;
  w.begin_object().field("object", "list").key("data").begin_array().raw(model_body(model)).end_array().end_object();
  return w.take();
}

}  // namespace pizza::serve
