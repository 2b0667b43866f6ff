#include "api/request.h"

#include "util/error.h"
#include "util/json_writer.h"

#include "api/json_access.h"

#include <simdjson.h>

#include <map>

namespace pizza::api {

namespace {

void write_canonical(JsonWriter& w, simdjson::dom::element e) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      // std::map sorts the keys; the values are written in that order.
      std::map<std::string_view, simdjson::dom::element> sorted;
      for (auto field : json::object_of(e)) sorted[field.key] = field.value;
      w.begin_object();
      for (auto& [k, v] : sorted) {
        w.key(k);
        write_canonical(w, v);
      }
      w.end_object();
      return;
    }
    case element_type::ARRAY:
      w.begin_array();
      for (auto v : json::array_of(e)) write_canonical(w, v);
      w.end_array();
      return;
    case element_type::STRING: w.value(e.get_string().value_unsafe()); return;
    case element_type::INT64: w.value(e.get_int64().value_unsafe()); return;
    case element_type::UINT64: w.raw(std::to_string(e.get_uint64().value_unsafe())); return;
    case element_type::DOUBLE: w.value(e.get_double().value_unsafe()); return;
    case element_type::BOOL: w.value(e.get_bool().value_unsafe()); return;
    case element_type::NULL_VALUE: w.null(); return;
  }
}

simdjson::dom::element parse_or_throw(simdjson::dom::parser& parser, std::string_view json,
                                      std::string_view what) {
  simdjson::dom::element doc;
  if (auto err = parser.parse(simdjson::padded_string(json)).get(doc)) {
    throw InputError(std::string(what) + " is not valid JSON (" + simdjson::error_message(err) +
                     "): " + std::string(json.substr(0, 200)));
  }
  return doc;
}

}  // namespace

std::string_view endpoint_path(Endpoint endpoint) {
  return endpoint == Endpoint::Chat ? "/chat/completions" : "/completions";
}

std::string canonical_json(std::string_view json, std::string_view what) {
  simdjson::dom::parser parser;
  JsonWriter w;
  write_canonical(w, parse_or_throw(parser, json, what));
  return w.take();
}

std::string serialize_body(const CompletionRequest& r) {
  const bool chat = r.endpoint == Endpoint::Chat;
  if (chat && r.echo)
    throw InputError("echo is only available on the completions endpoint (--endpoint completions)");
  if (!chat && r.system)
    throw InputError("a system message needs the chat endpoint (--endpoint chat)");
  // Every top-level member as canonical JSON text, keyed by name; extra_body overrides.
  std::map<std::string, std::string> members;
  auto put = [&members](const std::string& key, auto value) {
    JsonWriter w;
    w.value(value);
    members[key] = w.take();
  };
  put("model", r.model);
  if (chat) {
    JsonWriter w;
    w.begin_array();
    if (r.system) w.begin_object().field("content", *r.system).field("role", "system").end_object();
    w.begin_object().field("content", r.prompt).field("role", "user").end_object().end_array();
    members["messages"] = w.take();
  } else {
    put("prompt", r.prompt);
  }
  put(chat && !r.legacy_max_tokens ? "max_completion_tokens" : "max_tokens", r.max_tokens);
  put("temperature", r.temperature);
  if (r.seed) put("seed", *r.seed);
  if (r.logprobs) {
    if (chat) {
      put("logprobs", true);
      put("top_logprobs", static_cast<int64_t>(r.top_logprobs));
    } else {
      put("logprobs", static_cast<int64_t>(r.top_logprobs));
    }
  }
  if (r.echo) put("echo", true);
  if (!r.extra_body.empty()) {
    simdjson::dom::parser parser;
    simdjson::dom::element extra = parse_or_throw(parser, r.extra_body, "extra body");
    if (!extra.is_object())
      throw InputError("extra body must be a JSON object, got: " + r.extra_body.substr(0, 200));
    for (auto field : json::object_of(extra)) {
      JsonWriter w;
      write_canonical(w, field.value);
      members[std::string(field.key)] = w.take();
    }
  }
  JsonWriter w;
  w.begin_object();
  for (auto& [k, v] : members) w.key(k).raw(v);
  w.end_object();
  return w.take();
}

}  // namespace pizza::api
