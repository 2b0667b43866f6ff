// Shared libraries that pizza opens at run time (its "modules"), found beside the program.
//
// A module is a file of pizza's own build that is not linked into the program: a shared
// library whose linking would break something (the sentencepiece module: protobuf symbols that
// collide with libtorch's), or the engine program the front end starts (pizza-engine, which
// links libtorch). It is looked for, in order, in
//   1. $PIZZA_MODULE_DIR, when set (and then only there: packagers and tests point it elsewhere);
//   2. the running program's own directory (a build tree: build/pizza beside build/libpizza_*.so);
//   3. <program dir>/../lib/pizza (an installed tree: bin/pizza and lib/pizza/);
//   4. the directory the module was built in (test programs live in build/tests/).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace pizza {

// The directories a module is searched in, in order (see above).
std::vector<std::filesystem::path> module_search_dirs();

// The module `file_name` in the first of those directories that has it; InputError naming it
// and every directory searched when none does.
std::filesystem::path find_module(std::string_view file_name);

// An open shared library (RAII: closed when the last owner goes; never closed while symbols
// taken from it are in use, which callers guarantee by keeping the object alive).
class SharedLibrary {
 public:
  // Opens `file_name` from the module directories with the given dlopen flags; throws
  // InputError naming the file and every directory searched when none has it or it fails to
  // load (with the loader's message).
  SharedLibrary(std::string_view file_name, int dlopen_flags);
  ~SharedLibrary();
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // The address of an exported symbol; throws InputError naming the library when it is absent.
  void* symbol(const char* name) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  void* handle_ = nullptr;
};

}  // namespace pizza
