#include "api/retry.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <ctime>

namespace pizza::api {

namespace {

std::optional<double> parse_double(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<int> parse_int(std::string_view s) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<double> header_number(const Headers& headers, const std::string& name) {
  auto it = headers.find(name);
  return it == headers.end() ? std::nullopt : parse_double(it->second);
}

}  // namespace

Seconds backoff_delay(const RetryPolicy& policy, int retry, double u) {
  double ceiling = std::min(policy.cap_s, policy.base_s * std::ldexp(1.0, std::min(retry, 60)));
  return Seconds(std::clamp(u, 0.0, 1.0) * ceiling);
}

namespace {

// An IMF-fixdate as seconds since the epoch (time_t holds any 4-digit year; a time_point in
// nanoseconds overflows past 2262).
std::optional<std::time_t> http_date_seconds(std::string_view s) {
  // "Sun, 06 Nov 1994 08:49:37 GMT": fixed positions, English names, so no locale involved.
  static constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s.substr(25) != " GMT" || s[7] != ' ' || s[11] != ' ' ||
      s[16] != ' ' || s[19] != ':' || s[22] != ':') {
    return std::nullopt;
  }
  auto day = parse_int(s.substr(5, 2));
  auto year = parse_int(s.substr(12, 4));
  auto hour = parse_int(s.substr(17, 2));
  auto minute = parse_int(s.substr(20, 2));
  auto second = parse_int(s.substr(23, 2));
  auto month = std::find(kMonths.begin(), kMonths.end(), s.substr(8, 3));
  if (!day || !year || !hour || !minute || !second || month == kMonths.end() || *day < 1 || *day > 31 ||
      *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = static_cast<int>(month - kMonths.begin());
  tm.tm_mday = *day;
  tm.tm_hour = *hour;
  tm.tm_min = *minute;
  tm.tm_sec = *second;
  return timegm(&tm);
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view s) {
  auto t = http_date_seconds(s);
  if (!t) return std::nullopt;
  return std::chrono::system_clock::from_time_t(*t);
}

std::optional<Seconds> parse_retry_after(const Headers& headers, std::chrono::system_clock::time_point now) {
  if (auto ms = header_number(headers, "retry-after-ms"); ms && *ms >= 0) return Seconds(*ms / 1000.0);
  auto it = headers.find("retry-after");
  if (it == headers.end()) return std::nullopt;
  if (auto secs = parse_double(it->second)) return *secs >= 0 ? std::optional(Seconds(*secs)) : std::nullopt;
  // In seconds of time_t: a date far in the future (year 9999) is a long wait, not an overflow
  // into the past.
  if (auto date = http_date_seconds(it->second))
    return Seconds(std::max(0.0, std::difftime(*date, std::chrono::system_clock::to_time_t(now))));
  return std::nullopt;
}

std::optional<Seconds> parse_ratelimit_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double total = 0;
  while (!s.empty()) {
    size_t unit = s.find_first_not_of("0123456789.");
    if (unit == 0 || unit == std::string_view::npos) return std::nullopt;
    auto value = parse_double(s.substr(0, unit));
    if (!value) return std::nullopt;
    s.remove_prefix(unit);
    if (s.starts_with("ms")) {
      total += *value / 1000.0;
      s.remove_prefix(2);
    } else if (s.starts_with("h") || s.starts_with("m") || s.starts_with("s")) {
      total += *value * (s[0] == 'h' ? 3600.0 : s[0] == 'm' ? 60.0 : 1.0);
      s.remove_prefix(1);
    } else {
      return std::nullopt;
    }
  }
  return Seconds(total);
}

std::optional<Seconds> ratelimit_pause(const Headers& headers, size_t in_flight, double next_tokens) {
  auto reset = [&headers](const std::string& name) {
    auto it = headers.find(name);
    auto d = it == headers.end() ? std::nullopt : parse_ratelimit_duration(it->second);
    return std::min(d.value_or(Seconds(1)), Seconds(60));
  };
  auto requests = header_number(headers, "x-ratelimit-remaining-requests");
  if (requests && *requests < static_cast<double>(in_flight) + 1) return reset("x-ratelimit-reset-requests");
  auto tokens = header_number(headers, "x-ratelimit-remaining-tokens");
  if (tokens && *tokens < next_tokens) return reset("x-ratelimit-reset-tokens");
  return std::nullopt;
}

TokenBucket::TokenBucket(double per_minute, Clock::time_point now)
    : rate_per_s_(per_minute / 60.0),
      capacity_(std::max(1.0, per_minute / 10.0)),
      level_(capacity_),
      last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
  if (now > last_) level_ = std::min(capacity_, level_ + rate_per_s_ * Seconds(now - last_).count());
  last_ = std::max(last_, now);
}

Seconds TokenBucket::wait(double amount, Clock::time_point now) {
  if (rate_per_s_ <= 0) return Seconds(0);
  refill(now);
  // A request bigger than the whole bucket waits for a full bucket rather than forever.
  double need = std::min(amount, capacity_) - level_;
  return Seconds(need <= 0 ? 0.0 : need / rate_per_s_);
}

void TokenBucket::take(double amount, Clock::time_point now) {
  if (rate_per_s_ <= 0) return;
  refill(now);
  level_ -= std::min(amount, capacity_);
}

}  // namespace pizza::api
