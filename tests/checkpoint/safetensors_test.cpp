// The safetensors reader on hand-made files: exact values back from a valid file, and one clear
// InputError naming the file and the problem for each kind of broken file.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstring>

#include "checkpoint/broken_files.h"
#include "checkpoint/safetensors.h"
#include "support/paths.h"
#include "util/error.h"

using namespace pizza;
using checkpoint::Checkpoint;
using checkpoint::DType;
using checkpoint::SafetensorsFile;

namespace {

template <class T, size_t N>
std::string raw(const std::array<T, N>& values) {
  std::string s(sizeof(T) * N, '\0');
  std::memcpy(s.data(), values.data(), s.size());
  return s;
}

template <class T>
std::vector<T> values_of(const checkpoint::TensorView& v) {
  std::vector<T> out(v.nbytes / sizeof(T));
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

// Runs f, which must throw InputError; checks the message is one line naming `file` and
// containing `problem`.
template <class F>
void require_input_error(F&& f, const std::filesystem::path& file, const std::string& problem) {
  try {
    f();
  } catch (const InputError& e) {
    const std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(msg.find(file.string()) != std::string::npos);
    CHECK(msg.find(problem) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
    return;
  }
  FAIL("expected pizza::InputError containing '" << problem << "'");
}

void check_broken(const std::string& name) {
  for (const auto& c : test::broken_safetensors_files()) {
    if (c.name != name) continue;
    test::TempDir dir;
    const auto file = dir / "model.safetensors";
    test::write_bytes(file, c.bytes);
    require_input_error([&] { SafetensorsFile f(file); }, file, c.problem);
    // Opening the directory reports the same file.
    require_input_error([&] { (void)Checkpoint::open(dir.path()); }, file, c.problem);
    return;
  }
  FAIL("no broken-file case named " << name);
}

}  // namespace

TEST_CASE("safetensors: a valid hand-made file reads back exact values", "[checkpoint]") {
  // Values chosen to be exact in binary so a byte-level comparison is meaningful.
  const std::array<float, 6> a{0.5f, -1.25f, 3.0f, 1e-3f, -0.0f, 65504.0f};
  const std::array<int64_t, 2> b{-7, int64_t{1} << 40};
  const std::array<uint16_t, 3> c{0x3f80, 0xbf80, 0x0000};  // bf16 1, -1, 0
  const std::string header = R"({"__metadata__":{"format":"pt","note":"hand-made"},)"
                             R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                             R"("b":{"dtype":"I64","shape":[2],"data_offsets":[24,40]},)"
                             R"("c":{"dtype":"BF16","shape":[3],"data_offsets":[40,46]},)"
                             R"("empty":{"dtype":"F32","shape":[0,4],"data_offsets":[46,46]},)"
                             R"("scalar":{"dtype":"F64","shape":[],"data_offsets":[46,54]}})";
  const std::array<double, 1> scalar{2.75};
  test::TempDir dir;
  test::write_bytes(dir / "model.safetensors", test::safetensors_bytes(header, raw(a) + raw(b) + raw(c) + raw(scalar)));

  auto ck = Checkpoint::open(dir.path());
  CHECK(ck.names() == std::vector<std::string>{"a", "b", "c", "empty", "scalar"});

  const auto& ta = ck.get("a");
  CHECK(ta.dtype == DType::F32);
  CHECK(ta.shape == std::vector<int64_t>{2, 3});
  CHECK(ta.numel() == 6);
  CHECK(ta.nbytes == 24);
  CHECK(values_of<float>(ta) == std::vector<float>(a.begin(), a.end()));
  CHECK(std::signbit(values_of<float>(ta)[4]));  // -0.0 kept bit for bit

  const auto& tb = ck.get("b");
  CHECK(tb.dtype == DType::I64);
  CHECK(values_of<int64_t>(tb) == std::vector<int64_t>(b.begin(), b.end()));

  const auto& tc = ck.get("c");
  CHECK(tc.dtype == DType::BF16);
  CHECK(checkpoint::dtype_size(tc.dtype) == 2);
  CHECK(values_of<uint16_t>(tc) == std::vector<uint16_t>(c.begin(), c.end()));

  const auto& te = ck.get("empty");
  CHECK(te.numel() == 0);
  CHECK(te.nbytes == 0);

  const auto& ts = ck.get("scalar");
  CHECK(ts.shape.empty());
  CHECK(ts.numel() == 1);
  CHECK(values_of<double>(ts) == std::vector<double>{2.75});

  SafetensorsFile f(dir / "model.safetensors");
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "hand-made");
  CHECK(f.tensors().size() == 5);
}

TEST_CASE("safetensors: sharded checkpoint through model.safetensors.index.json", "[checkpoint]") {
  test::TempDir dir;
  const std::array<float, 2> x{1.5f, -2.5f}, y{4.0f, 8.0f};
  test::write_bytes(dir / "s1.safetensors",
                    test::safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", raw(x)));
  test::write_bytes(dir / "s2.safetensors",
                    test::safetensors_bytes(R"({"y":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", raw(y)));
  test::write_bytes(dir / "model.safetensors.index.json",
                    R"({"metadata":{},"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})");
  auto ck = Checkpoint::open(dir.path());
  CHECK(values_of<float>(ck.get("x")) == std::vector<float>{1.5f, -2.5f});
  CHECK(values_of<float>(ck.get("y")) == std::vector<float>{4.0f, 8.0f});

  // A shard name escaping the directory is refused, naming the index file.
  test::write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"x":"../s1.safetensors"}})");
  require_input_error([&] { (void)Checkpoint::open(dir.path()); }, dir / "model.safetensors.index.json",
                      "must be a plain file name");
  // A tensor present in two shards is ambiguous.
  test::write_bytes(dir / "s2.safetensors",
                    test::safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", raw(y)));
  test::write_bytes(dir / "model.safetensors.index.json",
                    R"({"weight_map":{"x":"s1.safetensors","y":"s2.safetensors"}})");
  require_input_error([&] { (void)Checkpoint::open(dir.path()); }, dir / "s2.safetensors",
                      "'x' appears in more than one shard");
}

TEST_CASE("safetensors: truncated file", "[checkpoint][bad-input]") {
  check_broken("truncated before the header length");
  check_broken("truncated data section");
}

TEST_CASE("safetensors: empty file", "[checkpoint][bad-input]") {
  test::TempDir dir;
  test::write_bytes(dir / "model.safetensors", "");
  require_input_error([&] { SafetensorsFile f(dir / "model.safetensors"); }, dir / "model.safetensors",
                      "file is 0 bytes");
}

TEST_CASE("safetensors: header length larger than the file", "[checkpoint][bad-input]") {
  check_broken("header length larger than the file");
}

TEST_CASE("safetensors: overlapping offsets", "[checkpoint][bad-input]") { check_broken("overlapping offsets"); }

TEST_CASE("safetensors: out-of-range offsets", "[checkpoint][bad-input]") {
  check_broken("offsets past the data section");
  check_broken("offsets reversed");
  check_broken("negative offset");
  check_broken("missing data_offsets");
}

TEST_CASE("safetensors: shape/size mismatch", "[checkpoint][bad-input]") {
  check_broken("shape and size mismatch");
  check_broken("shape overflowing 64 bits");
  check_broken("negative dimension");
}

TEST_CASE("safetensors: non-JSON header", "[checkpoint][bad-input]") {
  check_broken("non-JSON header");
  check_broken("header not an object");
}

TEST_CASE("safetensors: unknown dtype", "[checkpoint][bad-input]") { check_broken("unknown dtype"); }

TEST_CASE("safetensors: missing tensor", "[checkpoint][bad-input]") {
  test::TempDir dir;
  const auto file = dir / "model.safetensors";
  test::write_bytes(file, test::safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                                  std::string(8, '\0')));
  auto ck = Checkpoint::open(dir.path());
  CHECK(ck.find("model.norm.weight") == nullptr);
  CHECK_FALSE(ck.contains("model.norm.weight"));
  require_input_error([&] { (void)ck.get("model.norm.weight"); }, dir.path(), "missing tensor 'model.norm.weight'");
}

TEST_CASE("safetensors: directory without weights", "[checkpoint][bad-input]") {
  test::TempDir dir;
  require_input_error([&] { (void)Checkpoint::open(dir.path()); }, dir.path(),
                      "no model.safetensors or model.safetensors.index.json");
}
