#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::util {

// What stat(2) says about a path; exists() is false when stat failed.
struct FileStat {
  int error = 0;  // errno of the failed stat, 0 on success
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint32_t mode = 0;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  int64_t atime_ns = 0;
  uint64_t blocks = 0;

  bool exists() const { return error == 0; }
  bool is_regular() const;
  bool is_directory() const;
  // Bytes the file occupies on disk (st_blocks * 512).
  int64_t disk_size() const { return static_cast<int64_t>(blocks) * 512; }

  static FileStat of(const std::string& path);   // follows symlinks
  static FileStat lof(const std::string& path);  // does not follow symlinks
  static FileStat of_fd(int fd);
};

// Errors are errno values.
expected<std::string, int> read_file(const std::string& path);
expected<void, int> write_file(const std::string& path, std::string_view data);

// Writes to a unique temporary file next to `path`, then renames it over `path`,
// so readers see either the old or the whole new content, also after kill -9.
expected<void, int> write_file_atomic(const std::string& path, std::string_view data);

// A file written in pieces to a temporary name next to `path` and renamed over
// `path` by commit(), so that readers never see it half written. Destroyed
// without a commit, it removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : m_path(std::move(path)) {}
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Errors are errno values; after one, every later call fails with it too.
  expected<void, int> open();
  expected<void, int> write(std::string_view data);
  expected<void, int> commit();
  const std::string& path() const { return m_path; }

 private:
  void discard();

  std::string m_path;
  std::string m_tmp;
  int m_fd = -1;
  int m_error = 0;
};

// Creates `path` and its parents; an existing directory is success.
expected<void, int> make_directories(const std::string& path);

// Copies `from` to `to` atomically (temporary file + rename).
expected<void, int> copy_file_atomic(const std::string& from, const std::string& to);

// How place_file puts a file in place.
enum class LinkMode { copy, hardlink, reflink };

// Puts the content of `from` at `to` atomically (temporary file + rename):
// hardlink: link(2), falling back to a copy across file systems;
// reflink: a copy-on-write clone (FICLONE), falling back to a copy where the
// file system cannot clone; copy: copy_file_range / read+write.
expected<void, int> place_file(const std::string& from, const std::string& to, LinkMode mode);

// Returns a name unique to this process and call, for temporary files.
std::string unique_suffix();

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
bool write_all(int fd, std::string_view data);

// Sets the mtime of `path` to now (used for LRU); errors are ignored.
void touch(const std::string& path);

}  // namespace kiln::util
