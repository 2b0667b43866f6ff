// Helpers shared by the libFuzzer targets of tests/fuzz (one target per parser of untrusted
// bytes). The contract every target checks: a parser either succeeds or throws pizza's
// InputError (one clear line for the user). Anything else escaping LLVMFuzzerTestOneInput
// (another exception type, std::bad_alloc, a crash, an ASan/UBSan report, a hang past
// -timeout) is a finding.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

namespace pizza::fuzz {

// A private directory for the files a parser must read from disk, made once per fuzzer
// process (on tmpfs when there is one: the file is rewritten for every input) and removed at
// exit.
class ScratchDir {
 public:
  ScratchDir() {
    namespace fs = std::filesystem;
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string templ = (base / "pizza-fuzz-XXXXXX").string();
    if (!mkdtemp(templ.data())) {
      std::perror("pizza fuzz: cannot create a scratch directory");
      std::abort();
    }
    path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // Writes `bytes` to <dir>/<name> (replacing it) and returns its path.
  std::filesystem::path write(const std::string& name, std::string_view bytes) const {
    auto p = path_ / name;
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::fprintf(stderr, "pizza fuzz: cannot write %s\n", p.c_str());
      std::abort();
    }
    return p;
  }
  // Makes <dir>/<name> exactly `size` bytes long (a sparse tail of zeros when it grows).
  void resize(const std::string& name, uint64_t size) const { std::filesystem::resize_file(path_ / name, size); }
  // A weights file from one input: all but its last 4 bytes, then a sparse tail of zeros whose
  // length (below 64 MiB) those 4 bytes give, so that header sizes and data ranges past the
  // written bytes are reachable without the fuzzer writing megabytes. Returns the path; empty
  // for inputs shorter than 4 bytes.
  std::filesystem::path write_with_tail(const std::string& name, const uint8_t* data, size_t size) const {
    if (size < 4) return {};
    uint32_t tail = 0;
    for (int i = 0; i < 4; ++i) tail |= uint32_t(data[size - 4 + i]) << (8 * i);
    tail &= (1u << 26) - 1;
    auto p = write(name, std::string_view(reinterpret_cast<const char*>(data), size - 4));
    resize(name, size - 4 + tail);
    return p;
  }
  void remove(const std::string& name) const {
    std::error_code ec;
    std::filesystem::remove(path_ / name, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The input as text.
inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits an input that holds two files at the first "\n@@@\n" (the seeds of two-file targets
// are written that way); without the separator the second part is empty.
inline std::pair<std::string_view, std::string_view> split_two(std::string_view in) {
  constexpr std::string_view kSep = "\n@@@\n";
  const size_t at = in.find(kSep);
  if (at == std::string_view::npos) return {in, {}};
  return {in.substr(0, at), in.substr(at + kSep.size())};
}

}  // namespace pizza::fuzz
