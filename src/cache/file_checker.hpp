#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::cache {

// Flags found while hashing a file's content.
struct ContentInfo {
  util::Digest digest;
  bool has_date = false;  // __DATE__
  bool has_time = false;  // __TIME__ or __TIMESTAMP__
};

// Scans `data` for __DATE__, __TIME__ and __TIMESTAMP__.
void scan_time_macros(std::string_view data, ContentInfo* info);

// Memoizes stat and content hashes of the files one compilation looks at;
// relative paths are taken against `cwd`. Not thread-safe.
class FileChecker {
 public:
  explicit FileChecker(std::string cwd) : m_cwd(std::move(cwd)) {}

  const util::FileStat& stat(const std::string& path);
  // nullopt if the file cannot be read.
  const std::optional<ContentInfo>& content(const std::string& path);
  std::string absolute(const std::string& path) const;

  int64_t files_hashed() const { return m_files_hashed; }

 private:
  std::string m_cwd;
  std::unordered_map<std::string, util::FileStat> m_stats;
  std::unordered_map<std::string, std::optional<ContentInfo>> m_contents;
  int64_t m_files_hashed = 0;
};

}  // namespace kiln::cache
