#include "kiln/cache/file_checker.hpp"

#include <cstring>

#include "kiln/util/path.hpp"

namespace kiln::cache {

void scan_time_macros(std::string_view data, ContentInfo* info) {
  // Every macro of interest starts with "__" followed by 'D' or 'T'.
  size_t pos = 0;
  while ((pos = data.find("__", pos)) != std::string_view::npos) {
    std::string_view rest = data.substr(pos);
    if (rest.starts_with("__DATE__")) {
      info->has_date = true;
    } else if (rest.starts_with("__TIME__") || rest.starts_with("__TIMESTAMP__")) {
      info->has_time = true;
    }
    pos += 2;
  }
}

std::string FileChecker::absolute(const std::string& path) const {
  return path.empty() || path.front() == '/' ? path : util::join_path(m_cwd, path);
}

const util::FileStat& FileChecker::stat(const std::string& path) {
  auto it = m_stats.find(path);
  if (it != m_stats.end()) {
    return it->second;
  }
  return m_stats.emplace(path, util::FileStat::of(absolute(path))).first->second;
}

const std::optional<ContentInfo>& FileChecker::content(const std::string& path) {
  auto it = m_contents.find(path);
  if (it != m_contents.end()) {
    return it->second;
  }
  std::optional<ContentInfo> info;
  if (auto data = util::read_file(absolute(path))) {
    ++m_files_hashed;
    info.emplace();
    info->digest = util::Hasher().update(*data).finish();
    scan_time_macros(*data, &*info);
  }
  return m_contents.emplace(path, std::move(info)).first->second;
}

}  // namespace kiln::cache
