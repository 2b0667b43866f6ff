#include "util/shared_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <system_error>

#include "util/error.h"

namespace pizza {

namespace fs = std::filesystem;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

// dlopen, except that an AddressSanitizer build (CMAKE_BUILD_TYPE=Sanitize) may still use
// RTLD_DEEPBIND. ASan's dlopen interceptor refuses that flag outright, because a deep-bound
// library could resolve malloc to libc's instead of ASan's. Our modules are built with the same
// -fsanitize flags, so g++ puts libasan first among their DT_NEEDED entries and their deep
// scope finds ASan's malloc before libc's: the hazard does not apply. We therefore call libc's
// own dlopen past the interceptor. (The fuzz build, whose ASan runtime is linked statically,
// asks for no RTLD_DEEPBIND at all: see lib/tokenizer/sentencepiece.cpp.)
void* open_library(const char* path, int flags) {
  if (kAddressSanitizer && (flags & RTLD_DEEPBIND)) {
    using dlopen_fn = void* (*)(const char*, int);
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (auto real = libc ? reinterpret_cast<dlopen_fn>(dlsym(libc, "dlopen")) : nullptr) return real(path, flags);
  }
  return dlopen(path, flags);
}

}  // namespace

std::vector<fs::path> module_search_dirs() {
  if (const char* dir = std::getenv("PIZZA_MODULE_DIR"); dir && *dir) return {fs::path(dir)};
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && !exe.empty()) {
    dirs.push_back(exe.parent_path());
    dirs.push_back((exe.parent_path() / ".." / "lib" / "pizza").lexically_normal());
  }
#ifdef PIZZA_MODULE_BUILD_DIR
  dirs.emplace_back(PIZZA_MODULE_BUILD_DIR);
#endif
  return dirs;
}

fs::path find_module(std::string_view file_name) {
  std::string searched;
  for (const auto& dir : module_search_dirs()) {
    const fs::path candidate = dir / std::string(file_name);
    searched += (searched.empty() ? "" : ", ") + dir.string();
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  throw InputError("pizza's module " + std::string(file_name) + " was not found (looked in " + searched +
                   "); it is built and installed with pizza: reinstall it, or set PIZZA_MODULE_DIR to its directory");
}

SharedLibrary::SharedLibrary(std::string_view file_name, int dlopen_flags) : path_(find_module(file_name)) {
  dlerror();  // clear any earlier message
  handle_ = open_library(path_.c_str(), dlopen_flags);
  if (handle_) return;
  // A broken copy earlier in the order is reported, never silently replaced by a later one.
  const char* msg = dlerror();
  throw InputError("pizza's module " + path_.string() + " could not be loaded: " + (msg ? msg : "unknown loader error"));
}

SharedLibrary::~SharedLibrary() {
  if (handle_) dlclose(handle_);
}

void* SharedLibrary::symbol(const char* name) const {
  dlerror();
  void* p = dlsym(handle_, name);
  if (!p) throw InputError(path_.string() + ": not a pizza module of this version (no symbol " + std::string(name) + ")");
  return p;
}

}  // namespace pizza
