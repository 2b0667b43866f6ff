// Errors that carry context. Every failure the user can cause (a bad file, a bad value) is an
// InputError: the CLI prints its one-line message and exits 1. UsageError is for wrong
// command-line usage (exit 2). Anything else escaping to main() is a bug, reported as such.
#pragma once

#include <new>
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

// Runs `read`, which loads or parses `what` (a file's path); an allocation failure inside
// becomes an InputError naming it. Sizes read from files are bounded before they size anything,
// but should one slip past, the user still learns which file it was, not a bare std::bad_alloc.
template <class F>
decltype(auto) reading(const std::string& what, F&& read) {
  try {
    return read();
  } catch (const std::bad_alloc&) {
    throw InputError(what + ": ran out of memory while reading it (a size in it may be corrupt)");
  }
}

}  // namespace pizza
