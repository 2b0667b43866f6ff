#include "api/response.h"

#include "api/json_access.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/utf8.h"

namespace pizza::api {

namespace {

using simdjson::dom::element;

constexpr size_t kSnippet = 200;

// A member of an object, or nullopt when `e` is not an object, lacks it, or it is null.
std::optional<element> member(element e, std::string_view key) {
  element out;
  if (!e.is_object() || e[key].get(out) || out.is_null()) return std::nullopt;
  return out;
}

std::string string_or(std::optional<element> e, std::string fallback = "") {
  if (!e) return fallback;
  if (e->is_string()) return std::string(e->get_string().value_unsafe());
  if (e->is_number()) return simdjson::minify(*e);  // codes such as 404 come as numbers
  return fallback;
}

int64_t int_or_zero(std::optional<element> e) {
  int64_t v = 0;
  return e && !e->get_int64().get(v) ? v : 0;
}

// llama.cpp reports a zero probability as -FLT_MAX; anything that low means "impossible".
double normalise_logprob(double v) { return v <= -1e30 ? -std::numeric_limits<double>::infinity() : v; }

// Float error can make a certain token's log-probability a hair above 0; more is not one.
constexpr double kLogprobSlack = 1e-4;

// A logprob at `path` (for the error message): NaN when null or absent (not reported); a
// MalformedResponse when it is anything but a number <= 0.
double logprob_of(std::optional<element> e, const std::string& path) {
  if (!e) return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  if (!e->is_number() || e->get_double().get(v) || !std::isfinite(v))
    throw MalformedResponse("the server's response holds " + path + " = " + snippet(simdjson::minify(*e), "", 40) +
                            ", not a number (a log-probability)");
  if (v > kLogprobSlack)
    throw MalformedResponse("the server's response holds " + path + " = " + simdjson::minify(*e) +
                            ", a log-probability above 0 (a probability above 1)");
  return normalise_logprob(std::min(v, 0.0));
}

std::vector<uint8_t> bytes_of(std::optional<element> e) {
  std::vector<uint8_t> out;
  if (!e || !e->is_array()) return out;
  for (element b : json::array_of(*e)) {
    int64_t v = 0;
    if (b.get_int64().get(v) || v < 0 || v > 255)
      throw ApiError("token bytes hold a value that is not a byte: " + simdjson::minify(b));
    out.push_back(static_cast<uint8_t>(v));
  }
  return out;
}

// {token, logprob, bytes}: the token text is rebuilt from `bytes` when present, since servers
// show partial UTF-8 characters as U+FFFD in `token`.
TokenLogprob chat_token(element e, const std::string& path) {
  TokenLogprob t;
  t.bytes = bytes_of(member(e, "bytes"));
  t.token = t.bytes.empty() ? string_or(member(e, "token")) : std::string(t.bytes.begin(), t.bytes.end());
  t.logprob = logprob_of(member(e, "logprob"), path + ".logprob");
  return t;
}

void sort_top(std::vector<TopLogprob>& top) {
  std::stable_sort(top.begin(), top.end(),
                   [](const TopLogprob& a, const TopLogprob& b) { return a.logprob > b.logprob; });
}

// Chat style (OpenAI chat; llama.cpp on both endpoints): content[] of token entries.
std::vector<TokenLogprob> parse_content_list(element content) {
  std::vector<TokenLogprob> out;
  size_t i = 0;
  for (element e : json::array_of(content)) {
    const std::string path = "choices[0].logprobs.content[" + std::to_string(i++) + "]";
    TokenLogprob t = chat_token(e, path);
    if (auto top = member(e, "top_logprobs"); top && top->is_array()) {
      size_t j = 0;
      for (element alt : json::array_of(*top)) {
        TokenLogprob a = chat_token(alt, path + ".top_logprobs[" + std::to_string(j++) + "]");
        t.top.push_back({std::move(a.token), a.logprob});
      }
    }
    sort_top(t.top);
    out.push_back(std::move(t));
  }
  return out;
}

// Alternatives from a {token: logprob} object (legacy top_logprobs entry).
std::vector<TopLogprob> top_from_map(std::optional<element> e, const std::string& path) {
  std::vector<TopLogprob> top;
  if (!e || !e->is_object()) return top;
  for (auto field : json::object_of(*e))
    top.push_back({std::string(field.key), logprob_of(field.value, path + "[\"" + std::string(field.key) + "\"]")});
  sort_top(top);
  return top;
}

// Alternatives from a vLLM prompt_logprobs entry {token_id: {logprob, rank, decoded_token}}.
std::vector<TopLogprob> top_from_vllm(element e, const std::string& path) {
  std::vector<TopLogprob> top;
  if (!e.is_object()) return top;
  for (auto field : json::object_of(e)) {
    top.push_back({string_or(member(field.value, "decoded_token"), std::string(field.key)),
                   logprob_of(member(field.value, "logprob"), path + "[\"" + std::string(field.key) + "\"].logprob")});
  }
  sort_top(top);
  return top;
}

template <typename T>
std::vector<T> convert_array(std::optional<element> e, T (*convert)(element)) {
  std::vector<T> out;
  if (!e || !e->is_array()) return out;
  for (element x : json::array_of(*e)) out.push_back(convert(x));
  return out;
}

// Legacy completions (OpenAI, vLLM): parallel arrays; with echo the prompt tokens come first.
void parse_legacy(element logprobs, element choice, element root, const CompletionRequest& request,
                  Completion& c) {
  std::vector<std::string> tokens =
      convert_array<std::string>(member(logprobs, "tokens"), [](element x) { return string_or(x); });
  std::vector<double> lps;
  if (auto arr = member(logprobs, "token_logprobs"); arr && arr->is_array()) {
    for (element x : json::array_of(*arr)) {
      const std::string path = "choices[0].logprobs.token_logprobs[" + std::to_string(lps.size()) + "]";
      lps.push_back(logprob_of(x.is_null() ? std::nullopt : std::optional(x), path));
    }
  }
  std::vector<int64_t> offsets =
      convert_array<int64_t>(member(logprobs, "text_offset"), [](element x) { return int_or_zero(x); });
  std::optional<element> tops = member(logprobs, "top_logprobs");
  if (lps.size() != tokens.size())
    throw ApiError("logprobs.tokens and logprobs.token_logprobs differ in length");
  std::vector<TokenLogprob> all(tokens.size());
  size_t i = 0;
  for (auto& t : all) {
    t.token = std::move(tokens[i]);
    t.logprob = lps[i];
    if (tops && tops->is_array()) {
      element entry;
      if (!tops->at(i).get(entry))
        t.top = top_from_map(entry, "choices[0].logprobs.top_logprobs[" + std::to_string(i) + "]");
    }
    ++i;
  }
  size_t n_prompt = 0;
  if (request.echo) {
    std::optional<element> prompt_lps = member(choice, "prompt_logprobs");
    if (!prompt_lps) prompt_lps = member(root, "prompt_logprobs");
    if (prompt_lps && prompt_lps->is_array()) {
      // vLLM: one entry per prompt token, which says exactly where the prompt ends.
      auto arr = json::array_of(*prompt_lps);
      n_prompt = std::min(arr.size(), all.size());
      size_t k = 0;
      for (element e : arr) {
        if (k < n_prompt && !e.is_null()) all[k].top = top_from_vllm(e, "prompt_logprobs[" + std::to_string(k) + "]");
        ++k;
      }
    } else if (offsets.size() == all.size()) {
      // text_offset counts characters of prompt + completion.
      auto prompt_chars = static_cast<int64_t>(utf8_code_points(request.prompt));
      while (n_prompt < all.size() && offsets[n_prompt] < prompt_chars) ++n_prompt;
    } else {
      size_t bytes = 0;
      while (n_prompt < all.size() && bytes < request.prompt.size()) bytes += all[n_prompt++].token.size();
    }
  }
  c.prompt_tokens.assign(std::make_move_iterator(all.begin()),
                         std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(n_prompt)));
  c.tokens.assign(std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(n_prompt)),
                  std::make_move_iterator(all.end()));
}

}  // namespace

std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  static constexpr std::string_view kMark = "[redacted]";
  for (size_t pos = text.find(secret); pos != std::string::npos;
       pos = text.find(secret, pos + kMark.size())) {
    text.replace(pos, secret.size(), kMark);
  }
  return text;
}

std::string snippet(std::string_view text, std::string_view secret, size_t max_bytes) {
  std::string out = redact(std::string(text), secret);
  if (out.size() > max_bytes) {
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not mid-character
    out.resize(cut);
    out += "...";
  }
  std::replace_if(out.begin(), out.end(), [](char ch) { return ch == '\n' || ch == '\r'; }, ' ');
  return out;
}

std::optional<ErrorObject> parse_error_object(std::string_view body) {
  simdjson::dom::parser parser;
  element doc;
  if (parser.parse(simdjson::padded_string(body)).get(doc)) return std::nullopt;
  auto err = member(doc, "error");
  if (!err) return std::nullopt;
  if (err->is_string()) return ErrorObject{string_or(err), "", ""};  // some servers: {"error": "text"}
  return ErrorObject{string_or(member(*err, "message")), string_or(member(*err, "type")),
                     string_or(member(*err, "code"))};
}

std::string describe_http_failure(long status, std::string_view body, std::string_view secret) {
  std::string out = "HTTP " + std::to_string(status);
  if (auto err = parse_error_object(body)) {
    out += ": " + snippet(err->message, secret, kSnippet);
    if (!err->type.empty()) out += " (type " + snippet(err->type, secret, kSnippet) + ")";
    if (!err->code.empty()) out += " (code " + snippet(err->code, secret, kSnippet) + ")";
  } else if (!body.empty()) {
    out += ": " + snippet(body, secret, kSnippet);
  }
  return out;
}

Completion parse_completion(std::string_view body, const CompletionRequest& request) {
  simdjson::dom::parser parser;
  element root;
  if (auto e = parser.parse(simdjson::padded_string(body)).get(root)) {
    throw MalformedResponse("the server's response is not JSON (" + std::string(simdjson::error_message(e)) +
                            "): " + snippet(body, ""));
  }
  if (member(root, "error"))
    throw MalformedResponse("the server returned an error: " + describe_http_failure(200, body, ""));
  element choice;
  auto choices = member(root, "choices");
  if (!choices || !choices->is_array() || choices->at(0).get(choice)) {
    throw MalformedResponse("the server's response has no choices: " + snippet(body, ""));
  }
  Completion c;
  c.model = string_or(member(root, "model"));
  c.system_fingerprint = string_or(member(root, "system_fingerprint"));
  c.finish_reason = string_or(member(choice, "finish_reason"));
  if (auto usage = member(root, "usage")) {
    c.usage.prompt = int_or_zero(member(*usage, "prompt_tokens"));
    c.usage.completion = int_or_zero(member(*usage, "completion_tokens"));
  }
  if (auto message = member(choice, "message")) {
    c.text = string_or(member(*message, "content"));
  } else {
    c.text = string_or(member(choice, "text"));
  }
  auto logprobs = member(choice, "logprobs");
  auto content = logprobs ? member(*logprobs, "content") : std::nullopt;
  if (content && content->is_array()) {
    c.tokens = parse_content_list(*content);  // chat style; llama.cpp ignores echo
  } else if (logprobs && member(*logprobs, "tokens")) {
    parse_legacy(*logprobs, choice, root, request, c);
  } else if (request.logprobs) {
    throw ApiError("the server returned no logprobs; it may not support them (e.g. reasoning models)");
  }
  // Every generated token needs its own log-probability, and its alternatives when they were
  // asked for (free-running; echo requests score the prompt): without them the perturbed
  // outputs would score as if nothing matched.
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    const std::string path = content && content->is_array()
                                 ? "choices[0].logprobs.content[" + std::to_string(i) + "]"
                                 : "choices[0].logprobs.token_logprobs[" + std::to_string(c.prompt_tokens.size() + i) + "]";
    if (std::isnan(c.tokens[i].logprob))
      throw MalformedResponse("the server's response has no log-probability for generated token " + std::to_string(i) +
                              " (" + path + " is null or missing)");
    if (request.logprobs && request.top_logprobs > 0 && !request.echo && c.tokens[i].top.empty())
      throw MalformedResponse("the server's response has no top_logprobs for generated token " + std::to_string(i) +
                              " (" + path + "; " + std::to_string(request.top_logprobs) + " were asked for)");
    for (const auto& alt : c.tokens[i].top)
      if (std::isnan(alt.logprob))
        throw MalformedResponse("the server's response has an alternative without a log-probability at " + path);
  }
  // Echo puts the prompt in front of the generated text; Completion.text is generated only.
  if (request.echo && c.text.starts_with(request.prompt)) c.text.erase(0, request.prompt.size());
  return c;
}

}  // namespace pizza::api
