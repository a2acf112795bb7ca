#pragma once

#include <string>
#include <vector>

namespace kiln::service::test {

// One entry of an archive a test writes, exactly as given: the writer keeps
// absolute paths, "..", hard links and fifos, which is what the tests need.
struct TarEntry {
  enum class Kind { file, directory, symlink, hardlink, fifo };

  std::string path;
  Kind kind = Kind::file;
  std::string content;   // file
  std::string target;    // symlink, hardlink
  unsigned mode = 0644;  // permission bits, setuid and the like included
  long mtime = 1'600'000'000;

  static TarEntry file(std::string path, std::string content, unsigned mode = 0644);
  static TarEntry dir(std::string path);
  static TarEntry symlink(std::string path, std::string target);
  static TarEntry hardlink(std::string path, std::string target);
  static TarEntry fifo(std::string path);
};

enum class TarFilter { none, gzip, zstd, xz, bzip2 };

// A pax tar archive of `entries` in that order, compressed with `filter`,
// written by libarchive.
std::string make_tar(const std::vector<TarEntry>& entries, TarFilter filter = TarFilter::gzip);

// Bytes that do not compress: a body that fills several gzip blocks.
std::string incompressible(size_t size, unsigned seed = 1);

}  // namespace kiln::service::test
