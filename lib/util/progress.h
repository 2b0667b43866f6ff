// A progress bar on stderr, drawn only when stderr is a terminal (never in logs or pipes).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace pizza {

class ProgressBar {
 public:
  // enabled: draw at all (e.g. !--quiet); the bar also needs stderr to be a TTY.
  explicit ProgressBar(std::string label, bool enabled = true);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(size_t done, size_t total, const std::string& extra = "");
  void finish();

 private:
  std::string label_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace pizza
