// Errors that carry context. Every failure the user can cause (a bad file, a bad value) is an
// InputError: the CLI prints its one-line message and exits 1. UsageError is for wrong
// command-line usage (exit 2). Anything else escaping to main() is a bug, reported as such.
#pragma once

#include <stdexcept>
#include <string>

namespace pizza {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pizza
