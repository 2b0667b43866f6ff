#include "support/sse.h"

namespace pizza::test {

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  if (!started_) {
    pending_.append(bytes);
    constexpr std::string_view kBom = "\xEF\xBB\xBF";
    if (pending_.size() < kBom.size() && std::string_view(kBom).starts_with(pending_)) return out;
    started_ = true;
    std::string all = std::move(pending_);
    pending_.clear();
    if (all.starts_with(kBom)) all.erase(0, kBom.size());
    return feed(all);
  }
  for (char c : bytes) {
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') continue;  // CRLF: one line end
    }
    if (c == '\r' || c == '\n') {
      after_cr_ = c == '\r';
      line(pending_, out);
      pending_.clear();
    } else {
      pending_ += c;
    }
  }
  return out;
}

void SseParser::line(std::string_view l, std::vector<SseEvent>& out) {
  if (l.empty()) {  // dispatch
    if (has_data_) {
      if (data_.ends_with('\n')) data_.pop_back();
      out.push_back({type_.empty() ? "message" : type_, data_, last_id_});
    }
    data_.clear();
    type_.clear();
    has_data_ = false;
    return;
  }
  if (l.front() == ':') {
    comments_.emplace_back(l.substr(1));
    return;
  }
  std::string_view field = l, value;
  if (auto colon = l.find(':'); colon != std::string_view::npos) {
    field = l.substr(0, colon);
    value = l.substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
  }
  if (field == "data") {
    data_.append(value);
    data_ += '\n';
    has_data_ = true;
  } else if (field == "event") {
    type_ = value;
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_ = value;
  }
  // "retry" and unknown fields do not change events.
}

std::vector<SseEvent> parse_sse(std::string_view stream) {
  SseParser p;
  return p.feed(stream);
}

}  // namespace pizza::test
