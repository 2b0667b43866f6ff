#include "util/standard_input.h"

#include <iostream>
#include <iterator>

#include "util/error.h"

namespace pizza {

namespace {

struct Captured {
  bool read = false;
  std::string bytes;
};

Captured& captured() {
  static Captured c;
  return c;
}

}  // namespace

const std::string& standard_input(const std::string& what) {
  Captured& c = captured();
  if (!c.read) {
    c.bytes.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) throw InputError("cannot read " + what + " from standard input");
    c.read = true;
  }
  return c.bytes;
}

bool standard_input_read() { return captured().read; }

}  // namespace pizza
