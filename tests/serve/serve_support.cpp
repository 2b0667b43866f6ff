#include "serve_support.h"

#include <sstream>

namespace pizza::test {

std::unique_ptr<LanguageModel> load_stories() {
  Runtime rt;
  rt.device = torch::kCPU;
  rt.dtype = torch::kFloat32;
  rt.threads = 1;
  return LanguageModel::load(shared("models/stories260K"), rt);
}

RunningServer::RunningServer(const LanguageModel& lm, serve::ServeOptions opts) {
  opts.host = "127.0.0.1";
  opts.port = 0;  // any free port: no collisions between tests running in parallel
  server_ = std::make_unique<serve::Server>(lm, std::move(opts));
  thread_ = std::thread([this] { server_->run(); });
}

RunningServer::~RunningServer() {
  server_->stop();
  thread_.join();
}

namespace {

// No Catch assertions here: these are called from several threads at once.
HttpReply reply(const httplib::Result& res) {
  if (!res) return {-1, "HTTP error: " + httplib::to_string(res.error()), {}};
  return {res->status, res->body, res->headers};
}

}  // namespace

HttpReply post(int port, const std::string& path, const std::string& body) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(300, 0);
  return reply(cli.Post(path.c_str(), body, "application/json"));
}

HttpReply get(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  return reply(cli.Get(path.c_str()));
}

StreamReply post_stream(int port, const std::string& path, const std::string& body,
                        const std::function<bool(const SseEvent&)>& keep_reading) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(300, 0);
  StreamReply out;
  SseParser parser;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    out.body.append(data, n);
    for (auto& e : parser.feed(std::string_view(data, n))) {
      out.events.push_back(std::move(e));
      if (keep_reading && !keep_reading(out.events.back())) return false;
    }
    return true;
  };
  httplib::Response res;
  auto err = httplib::Error::Success;
  if (!cli.send(req, res, err) && err != httplib::Error::Canceled) {
    out.status = -1;
    out.body = "HTTP error: " + httplib::to_string(err);
    return out;
  }
  out.status = res.status;
  out.headers = res.headers;
  return out;
}

std::unique_ptr<Json> parse_json(const std::string& text) {
  auto j = std::make_unique<Json>();
  INFO("JSON: " << text);
  REQUIRE(j->parser.parse(text).get(j->root) == simdjson::SUCCESS);
  return j;
}

namespace {

std::string_view kind(simdjson::dom::element v) {
  switch (v.type()) {
    case simdjson::dom::element_type::ARRAY: return "array";
    case simdjson::dom::element_type::OBJECT: return "object";
    case simdjson::dom::element_type::INT64:
    case simdjson::dom::element_type::UINT64: return "integer";
    case simdjson::dom::element_type::DOUBLE: return "number";
    case simdjson::dom::element_type::STRING: return "string";
    case simdjson::dom::element_type::BOOL: return "boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
  }
  return "?";
}

std::string mismatch(simdjson::dom::element value, simdjson::dom::element shape, const std::string& path) {
  if (shape.is_string()) {
    const std::string allowed{std::string_view(shape)};
    std::string got(kind(value));
    std::istringstream ss(allowed);
    for (std::string t; std::getline(ss, t, '|');)
      if (t == got || (t == "number" && got == "integer")) return {};
    return path + ": expected " + allowed + ", got " + got;
  }
  if (shape.is_array()) {
    if (!value.is_array()) return path + ": expected array, got " + std::string(kind(value));
    auto elem_shape = shape.get_array().at(0).value();
    size_t i = 0;
    for (auto item : value.get_array()) {
      auto m = mismatch(item, elem_shape, path + "[" + std::to_string(i++) + "]");
      if (!m.empty()) return m;
    }
    return {};
  }
  if (!value.is_object()) return path + ": expected object, got " + std::string(kind(value));
  for (auto [key, sub] : shape.get_object()) {
    simdjson::dom::element v;
    const std::string p = path.empty() ? std::string(key) : path + "." + std::string(key);
    if (value.get_object()[key].get(v)) return p + ": missing";
    auto m = mismatch(v, sub, p);
    if (!m.empty()) return m;
  }
  return {};
}

}  // namespace

std::string shape_mismatch(simdjson::dom::element value, const std::string& shape) {
  simdjson::dom::parser parser;
  simdjson::dom::element s;
  REQUIRE(parser.parse(shape).get(s) == simdjson::SUCCESS);
  return mismatch(value, s, "");
}

}  // namespace pizza::test
