#include "util/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "util/error.h"

namespace pizza {

namespace {

// Opens `path` for reading and stats it; throws InputError naming the path on failure. A FIFO
// is opened blocking only when `may_block` (a stream the user chose: it waits for its writer,
// since a non-blocking reader of a FIFO without a writer reads end-of-file at once); anything
// else is opened O_NONBLOCK, so a FIFO that appears in place of a file cannot block the open.
int open_for_reading(const std::filesystem::path& path, struct stat& st, bool may_block) {
  struct stat pre {};
  const bool fifo = ::stat(path.c_str(), &pre) == 0 && S_ISFIFO(pre.st_mode);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (fifo && may_block ? 0 : O_NONBLOCK));
  if (fd < 0) throw InputError("cannot open " + path.string() + ": " + std::strerror(errno));
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw InputError("cannot read " + path.string() + ": " + std::strerror(err));
  }
  return fd;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a special file";
}

}  // namespace

std::string read_file(const std::filesystem::path& path, FileSource source) {
  struct stat st {};
  const int fd = open_for_reading(path, st, source == FileSource::stream_ok);
  const bool stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode);
  if (!S_ISREG(st.st_mode) && !(stream && source == FileSource::stream_ok)) {
    ::close(fd);
    throw InputError("cannot read " + path.string() + ": it is " + kind_of(st.st_mode) + ", not a regular file");
  }
  if (stream) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // e.g. a terminal: wait for input
  std::string out;
  if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw InputError("cannot read " + path.string() + ": " + std::strerror(err));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

namespace {

// `path` with every symlink of its last component followed (a dangling link resolves to the
// file it names, which writing then creates). Bounded like the kernel's own resolution.
std::filesystem::path resolve_links(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    if (!fs::is_symlink(p, ec)) return p;
    const fs::path next = fs::read_symlink(p, ec);
    if (ec) throw InputError("cannot write " + path.string() + ": " + ec.message());
    p = next.is_absolute() ? next : p.parent_path() / next;
  }
  throw InputError("cannot write " + path.string() + ": too many levels of symbolic links");
}

[[noreturn]] void write_error(const std::filesystem::path& path, int err) {
  throw InputError("cannot write " + path.string() + ": " + std::strerror(err));
}

void write_all(int fd, std::string_view contents, const std::filesystem::path& path) {
  size_t off = 0;
  while (off < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      write_error(path, errno);
    }
    off += static_cast<size_t>(n);
  }
}

// Writes into an existing character device or FIFO, as `> path` in a shell would.
void write_in_place(const std::filesystem::path& path, std::string_view contents) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) write_error(path, errno);
  try {
    write_all(fd, contents, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0 && errno != EINTR) write_error(path, errno);
}

}  // namespace

void check_writable(const std::filesystem::path& path) {
  const auto target = resolve_links(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode))
      throw InputError("cannot write " + path.string() + ": it is " + kind_of(st.st_mode));
    if (::access(target.c_str(), W_OK) != 0) write_error(path, errno);
    if (!S_ISREG(st.st_mode)) return;  // written in place
  }
  // A regular file is replaced through a temp file in its directory.
  const auto dir = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
  if (::stat(dir.c_str(), &st) != 0) write_error(path, errno);
  if (!S_ISDIR(st.st_mode)) throw InputError("cannot write " + path.string() + ": " + dir.string() + " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) write_error(path, errno);
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  const auto target = resolve_links(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return write_in_place(target, contents);
    throw InputError("cannot write " + path.string() + ": it is " + kind_of(st.st_mode));
  }
  std::random_device rd;
  auto tmp = target;
  tmp += ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) write_error(path, errno);
  try {
    write_all(fd, contents, path);
    if (::fsync(fd) != 0) write_error(path, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    write_error(path, err);
  }
}

MappedFile::MappedFile(const std::filesystem::path& path, Residency residency) : path_(path) {
  struct stat st {};
  const int fd = open_for_reading(path, st, false);
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError("cannot read " + path.string() + ": it is " + std::string(kind_of(st.st_mode)) +
                     ", not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    return;
  }
  if (residency == Residency::mapped) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw InputError("cannot map " + path.string() + ": " + std::strerror(err));
    data_ = static_cast<const char*>(p);
    return;
  }
  // Copied: anonymous pages (page-aligned like a mapping, so views keep their alignment),
  // filled by read() and then made read-only.
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::close(fd);
    throw InputError("cannot read " + path.string() + " into memory (" + std::to_string(size_) + " bytes): " + std::strerror(err));
  }
  auto* dst = static_cast<char*>(p);
  size_t done = 0;
  while (done < size_) {
    const ssize_t n = ::pread(fd, dst + done, size_ - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : 0;
      ::close(fd);
      ::munmap(p, size_);
      throw InputError("cannot read " + path.string() + ": " +
                       (n < 0 ? std::string(std::strerror(err)) : "the file shrank while it was read"));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  ::mprotect(p, size_, PROT_READ);
  data_ = dst;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace pizza
