#include "kiln/util/path.hpp"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <vector>

#include "kiln/util/file.hpp"

namespace kiln::util {

std::string_view dir_name(std::string_view path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string_view::npos) {
    return ".";
  }
  if (pos == 0) {
    return "/";
  }
  return path.substr(0, pos);
}

std::string_view base_name(std::string_view path) {
  auto pos = path.find_last_of('/');
  return pos == std::string_view::npos ? path : path.substr(pos + 1);
}

std::string join_path(std::string_view a, std::string_view b) {
  if (a.empty() || (!b.empty() && b.front() == '/')) {
    return std::string(b);
  }
  std::string out(a);
  if (out.back() != '/') {
    out += '/';
  }
  out += b;
  return out;
}

namespace {
const char* part_data(std::string_view part) {
  return part.data();
}
}  // namespace

namespace {
// The non-empty names between slashes, as views of `path`.
std::vector<std::string_view> component_views(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    if (slash > start) {
      parts.push_back(path.substr(start, slash - start));
    }
    start = slash + 1;
  }
  return parts;
}
}  // namespace

std::vector<std::string> path_components(std::string_view path) {
  auto views = component_views(path);
  return {views.begin(), views.end()};
}

std::string normalize(std::string_view path) {
  bool abs = !path.empty() && path.front() == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) {
      j = path.size();
    }
    std::string_view part = path.substr(i, j - i);
    if (part.empty() || part == ".") {
      // skip
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!abs) {
        parts.push_back(part);
      }
    } else {
      parts.push_back(part);
    }
    i = j + 1;
  }
  if (parts.empty()) {
    return abs ? "/" : ".";
  }
  size_t length = abs ? 1 : 0;
  for (auto part : parts) {
    length += part.size() + 1;
  }
  std::string out;
  out.reserve(length);
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k > 0 || abs) {
      out.push_back('/');
    }
    out.append(part_data(parts[k]), parts[k].size());
  }
  return out;
}

std::string absolute(std::string_view path, std::string_view cwd) {
  if (!path.empty() && path.front() == '/') {
    return normalize(path);
  }
  return normalize(join_path(cwd, path));
}

bool is_under(std::string_view path, std::string_view dir) {
  if (dir == "/") {
    return !path.empty() && path.front() == '/';
  }
  return path.size() >= dir.size() && path.substr(0, dir.size()) == dir &&
         (path.size() == dir.size() || path[dir.size()] == '/');
}

std::string relative(std::string_view to, std::string_view from) {
  auto t = component_views(to);
  auto f = component_views(from);
  size_t common = 0;
  while (common < t.size() && common < f.size() && t[common] == f[common]) {
    ++common;
  }
  std::string out;
  for (size_t k = common; k < f.size(); ++k) {
    out += out.empty() ? ".." : "/..";
  }
  for (size_t k = common; k < t.size(); ++k) {
    if (!out.empty()) {
      out += '/';
    }
    out += t[k];
  }
  return out.empty() ? "." : out;
}

std::string current_dir() {
  char buf[PATH_MAX];
  std::string cwd = ::getcwd(buf, sizeof buf) ? buf : "";
  const char* pwd = ::getenv("PWD");
  if (pwd && pwd[0] == '/' && cwd != pwd) {
    FileStat a = FileStat::of(pwd);
    FileStat b = FileStat::of(cwd.empty() ? "." : cwd);
    if (a.exists() && b.exists() && a.dev == b.dev && a.ino == b.ino) {
      return normalize(pwd);
    }
  }
  return cwd;
}

std::string real_path(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

}  // namespace kiln::util
