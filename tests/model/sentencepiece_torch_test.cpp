// The sentencepiece library and libtorch in one process: libtorch loads libprotobuf 3.21, and
// Debian's libsentencepiece carries its own protobuf-lite 3.14, whose symbols collide with it
// when both are linked (protobuf's version check aborts at start-up). pizza loads
// libsentencepiece only inside its module, opened with RTLD_LOCAL | RTLD_DEEPBIND; this test
// runs a libtorch computation and the library's tokenization in the same process.
#include "support/torch_catch.h"

#include <fstream>
#include <string>

#include "support/paths.h"
#include "tokenizer/tokenizer.h"

using namespace pizza;

namespace {

bool mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find(name) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("sentencepiece module and libtorch work in one process", "[model][tokenizer][sentencepiece]") {
  // libtorch computes (and has its libprotobuf loaded)...
  auto a = torch::arange(6, torch::kFloat64).reshape({2, 3});
  CHECK(torch::mm(a, a.t()).sum().item<double>() == 0 * 0 + 1 + 4 + 9 + 16 + 25 + 2 * (0 * 3 + 1 * 4 + 2 * 5));
  REQUIRE(mapped("libprotobuf.so"));

  // ...and the sentencepiece library tokenizes in the same process: stories260K's ids from
  // ../shared/reference/stories260K/reference_outputs.json.
  auto tok = load_tokenizer(test::shared("models/stories260K"));
  CHECK(tok->encode("Once upon a time").ids() == std::vector<int32_t>{1, 403, 407, 261, 378});
  CHECK(mapped("libsentencepiece.so"));
  CHECK(tok->decode(std::vector<int32_t>{1, 403, 407, 261, 378}) == "Once upon a time");

  // And libtorch still computes afterwards.
  CHECK(torch::ones({4}).sum().item<float>() == 4.0f);
}

// With libtorch in the process, the module's unique symbols bind to libtorch's copies and nothing
// pins it, so dropping the last tokenizer unloaded it; libsentencepiece's embedded protobuf had
// allocated process-wide state that only its own shutdown frees, lost on every unload
// (LeakSanitizer at the exit of pizza serve). The module is opened with RTLD_NODELETE.
TEST_CASE("sentencepiece module stays loaded after its last tokenizer is gone", "[model][tokenizer][sentencepiece]") {
  REQUIRE(mapped("libprotobuf.so"));  // libtorch's, as in every pizza process
  CHECK(load_tokenizer(test::shared("models/stories260K"))->vocab_size() == 512);
  CHECK(mapped("libpizza_sentencepiece.so"));
}
