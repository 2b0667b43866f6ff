// A server-sent events parser for the tests, as the WHATWG HTML standard's "event stream
// interpretation" defines it (and as the OpenAI SDKs' stream decoders follow it): lines end in
// CRLF, LF or CR; a line starting with ':' is a comment; "field: value" loses one space after
// the colon; the values of several data lines are joined with '\n'; a blank line dispatches the
// event (none when it has no data); what is left without a blank line at the end is dropped.
// Incremental: bytes may be fed in pieces split anywhere, as they arrive from a socket.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pizza::test {

struct SseEvent {
  std::string type = "message";  // the "event" field
  std::string data;
  std::string id;                // the last event ID so far
};

class SseParser {
 public:
  // Parses the next bytes; returns the events they complete, in order.
  std::vector<SseEvent> feed(std::string_view bytes);
  // Comments seen so far (without the ':').
  const std::vector<std::string>& comments() const { return comments_; }

 private:
  void line(std::string_view l, std::vector<SseEvent>& out);

  std::string pending_;        // an unfinished line
  bool after_cr_ = false;      // the last byte was a CR: a following LF belongs to it
  bool started_ = false;       // past a leading byte order mark
  std::string data_, type_, last_id_;
  bool has_data_ = false;
  std::vector<std::string> comments_;
};

// All events of a complete stream.
std::vector<SseEvent> parse_sse(std::string_view stream);

}  // namespace pizza::test
