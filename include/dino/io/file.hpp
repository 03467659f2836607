// Writing files safely: all bytes or an error, and the atomic replace (temporary file, fsync, rename) that
// checkpoints, .npy tables and the metric files share, so that a crash never leaves a half-written file.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "dino/core/error.hpp"

namespace dino::io {

namespace file_detail {
inline bool write_all(int fd, const char* buf, std::size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(fd, buf, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    buf += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}
}  // namespace file_detail

// Replaces the file at path by bytes: writes "<path>.tmp.<pid>", renames it over path, so a reader (or a crash)
// sees the old file or the new one, never a part. durable: also fsync the file before the rename and the folder
// after it (survives power loss; costs milliseconds, so per-step rewrites pass false). Errors name path.
inline void write_file_atomic(const std::string& path, const void* data, std::size_t size, bool durable = true) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  DINO_CHECK(fd >= 0, "cannot write '", path, "': creating '", tmp, "' failed: ", std::strerror(errno));
  std::string err;
  if (!file_detail::write_all(fd, static_cast<const char*>(data), size)) err = std::string("write: ") + std::strerror(errno);
  if (err.empty() && durable && ::fsync(fd) != 0) err = std::string("fsync: ") + std::strerror(errno);
  if (::close(fd) != 0 && err.empty()) err = std::string("close: ") + std::strerror(errno);
  if (err.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) err = std::string("rename: ") + std::strerror(errno);
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    fail("cannot write '", path, "': ", err);
  }
  if (!durable) return;
  // The rename is durable only once the folder's entry is on disk; EINVAL: the filesystem cannot sync folders.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    DINO_CHECK(rc == 0 || e == EINVAL, "wrote '", path, "' but syncing its folder failed: ", std::strerror(e));
  }
}

inline void write_file_atomic(const std::string& path, const std::string& bytes, bool durable = true) {
  write_file_atomic(path, bytes.data(), bytes.size(), durable);
}

}  // namespace dino::io
