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

// Opens `path` for reading without blocking (a FIFO without a writer would block a plain
// open) and stats it; throws InputError naming the path on failure.
int open_for_reading(const std::filesystem::path& path, struct stat& st) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
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
  int fd = open_for_reading(path, st);
  const bool stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode);
  if (!S_ISREG(st.st_mode) && !(stream && source == FileSource::stream_ok)) {
    ::close(fd);
    throw InputError("cannot read " + path.string() + ": it is " + kind_of(st.st_mode) + ", not a regular file");
  }
  if (stream) {
    // A stream the user chose: open it again, blocking, so that a FIFO waits for its writer
    // (a non-blocking reader of a FIFO without a writer reads end-of-file at once).
    ::close(fd);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError("cannot open " + path.string() + ": " + std::strerror(errno));
  }
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

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  std::random_device rd;
  auto tmp = path;
  tmp += ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 100000);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError("cannot write " + path.string() + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + off, contents.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw InputError("cannot write " + path.string() + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw InputError("cannot write " + path.string() + ": " + std::strerror(err));
  }
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  struct stat st {};
  const int fd = open_for_reading(path, st);
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError("cannot read " + path.string() + ": it is " + std::string(kind_of(st.st_mode)) +
                     ", not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw InputError("cannot map " + path.string() + ": " + std::strerror(errno));
    }
    data_ = static_cast<const char*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace pizza
