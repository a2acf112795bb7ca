#include "kiln/service/archive_check.hpp"

#include <deque>
#include <set>
#include <vector>

#include "kiln/util/path.hpp"

namespace kiln::service {

namespace {

// Component names longer than this no file system of Linux takes.
constexpr size_t k_max_name = 255;
// Links followed while resolving one target: the kernel's limit (ELOOP).
constexpr int k_max_link_hops = 40;
// Components walked while resolving all links of one archive, so that an
// archive of many links that lead through each other costs bounded time.
constexpr uint64_t k_max_resolution_steps = 4'000'000;

ArchiveError invalid(std::string message) {
  return ArchiveError{ArchiveProblem::invalid, std::move(message)};
}

std::string quoted(std::string_view path) {
  return "\"" + std::string(path) + "\"";
}

std::string parent_of(const std::string& rel) {
  const auto slash = rel.rfind('/');
  return slash == std::string::npos ? std::string() : rel.substr(0, slash);
}

// Resolves `target` lexically from directory `dir` (a member path); false
// when a ".." leaves the root.
bool lexically_inside(const std::string& dir, std::string_view target) {
  size_t depth = util::path_components(dir).size();
  for (const std::string& part : util::path_components(target)) {
    if (part == ".") {
      continue;
    }
    if (part == "..") {
      if (depth == 0) {
        return false;
      }
      --depth;
    } else {
      ++depth;
    }
  }
  return true;
}

enum class Resolution { inside, outside, loop, too_complex };

// Follows `target` from directory `dir` as the kernel would on the
// extracted tree: each component that names one of the archive's links is
// replaced by that link's target. The tree is the archive's alone (extraction
// starts from an empty directory), so this is exact.
Resolution resolve(const std::string& dir, std::string_view target,
                   const std::unordered_map<std::string, std::string>& links, uint64_t& steps) {
  std::string path;                // the components resolved so far, joined by '/'
  std::vector<size_t> boundaries;  // path's length before each of them
  const auto push = [&](const std::string& part) {
    boundaries.push_back(path.size());
    path += (path.empty() ? "" : "/") + part;
  };
  for (const std::string& part : util::path_components(dir)) {
    push(part);
  }
  std::deque<std::string> pending;
  for (std::string& part : util::path_components(target)) {
    pending.push_back(std::move(part));
  }
  int hops = 0;
  while (!pending.empty()) {
    if (++steps > k_max_resolution_steps) {
      return Resolution::too_complex;
    }
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == ".") {
      continue;
    }
    if (part == "..") {
      if (boundaries.empty()) {
        return Resolution::outside;
      }
      path.resize(boundaries.back());
      boundaries.pop_back();
      continue;
    }
    push(part);
    const auto link = links.find(path);
    if (link == links.end()) {
      continue;
    }
    if (++hops > k_max_link_hops) {
      return Resolution::loop;
    }
    // The link stands for its target, read from the link's directory.
    path.resize(boundaries.back());
    boundaries.pop_back();
    auto parts = util::path_components(link->second);
    pending.insert(pending.begin(), parts.begin(), parts.end());
  }
  return Resolution::inside;
}

std::string type_text(EntryType type) {
  switch (type) {
    case EntryType::regular:
      return "a regular file";
    case EntryType::directory:
      return "a directory";
    case EntryType::symlink:
      return "a symbolic link";
    default:
      return "another type";
  }
}

}  // namespace

expected<std::string, std::string> member_path(std::string_view stored) {
  std::string_view rest = stored;
  while (rest.starts_with("./")) {
    rest.remove_prefix(2);
  }
  if (rest.starts_with('/')) {
    return unexpected(std::string("absolute path"));
  }
  if (rest.size() > k_max_member_path) {
    return unexpected("path longer than " + std::to_string(k_max_member_path) + " bytes");
  }
  std::string out;
  for (const std::string& part : util::path_components(rest)) {
    if (part == ".") {
      continue;
    }
    if (part == "..") {
      return unexpected(std::string("'..' in the path"));
    }
    if (part.size() > k_max_name) {
      return unexpected("a name longer than " + std::to_string(k_max_name) + " bytes");
    }
    out += (out.empty() ? "" : "/") + part;
  }
  return out;
}

expected<std::string, ArchiveError> ArchiveChecker::add(const ArchiveEntryInfo& entry) {
  if (++m_entries > m_limits.max_entries) {
    return unexpected(ArchiveError{ArchiveProblem::too_large,
                                   "more than " + std::to_string(m_limits.max_entries) +
                                       " entries (at " + quoted(entry.path) + ")"});
  }
  auto rel = member_path(entry.path);
  if (!rel) {
    return unexpected(invalid("entry " + quoted(entry.path) + ": " + rel.error()));
  }
  switch (entry.type) {
    case EntryType::hardlink:
      return unexpected(invalid("entry " + quoted(entry.path) + " is a hard link (to " +
                                quoted(entry.link_target) + "); hard links are not allowed"));
    case EntryType::other:
      return unexpected(invalid("entry " + quoted(entry.path) + " is a " + entry.type_name +
                                "; only regular files, directories and symbolic links are "
                                "allowed"));
    case EntryType::symlink:
      if (entry.link_target.empty()) {
        return unexpected(invalid("symbolic link " + quoted(entry.path) + " has an empty target"));
      }
      if (entry.link_target.front() == '/') {
        return unexpected(invalid("symbolic link " + quoted(entry.path) + " -> " +
                                  quoted(entry.link_target) + " has an absolute target"));
      }
      if (entry.link_target.size() > k_max_member_path) {
        return unexpected(invalid("symbolic link " + quoted(entry.path) +
                                  " has a target longer than " + std::to_string(k_max_member_path) +
                                  " bytes"));
      }
      if (!lexically_inside(parent_of(*rel), entry.link_target)) {
        return unexpected(invalid("symbolic link " + quoted(entry.path) + " -> " +
                                  quoted(entry.link_target) + " leads out of the archive"));
      }
      break;
    case EntryType::regular:
      m_bytes += entry.size;
      if (m_bytes > m_limits.max_unpacked_bytes) {
        return unexpected(ArchiveError{ArchiveProblem::too_large,
                                       "more than " + std::to_string(m_limits.max_unpacked_bytes) +
                                           " bytes unpacked (at " + quoted(entry.path) + ")"});
      }
      break;
    case EntryType::directory:
      break;
  }
  if (rel->empty() && entry.type != EntryType::directory) {
    return unexpected(invalid("entry " + quoted(entry.path) + " names the archive's root"));
  }
  if (auto placed = check_place(*rel, entry); !placed) {
    return unexpected(placed.error());
  }
  if (!rel->empty()) {
    m_types[*rel] = entry.type;
  }
  if (entry.type == EntryType::symlink) {
    m_links[*rel] = entry.link_target;
  }
  return *rel;
}

// Whether the entry may be put at `rel` given the entries before it: what
// extraction would otherwise do through or over a link is what an attacker
// wants from it.
expected<void, ArchiveError> ArchiveChecker::check_place(const std::string& rel,
                                                         const ArchiveEntryInfo& entry) {
  for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
    const std::string prefix = rel.substr(0, slash);
    const auto known = m_types.find(prefix);
    if (known == m_types.end()) {
      continue;
    }
    if (known->second == EntryType::symlink) {
      return unexpected(invalid("entry " + quoted(entry.path) + " lies under the symbolic link " +
                                quoted(prefix)));
    }
    if (known->second == EntryType::regular) {
      return unexpected(invalid("entry " + quoted(entry.path) + " lies under the regular file " +
                                quoted(prefix)));
    }
  }
  if (rel.empty()) {
    return {};
  }
  const auto same = m_types.find(rel);
  const auto below = m_types.lower_bound(rel + "/");
  const bool has_children = below != m_types.end() && below->first.starts_with(rel + "/");
  if (entry.type == EntryType::symlink && same != m_types.end()) {
    return unexpected(invalid("symbolic link " + quoted(entry.path) +
                              " would replace an earlier entry of that name"));
  }
  if (entry.type != EntryType::directory && has_children) {
    return unexpected(invalid("entry " + quoted(entry.path) + " is " + type_text(entry.type) +
                              " but earlier entries lie under it"));
  }
  if (same != m_types.end() && same->second != entry.type) {
    return unexpected(invalid("entry " + quoted(entry.path) + " is " + type_text(entry.type) +
                              " but an earlier entry of that name is " + type_text(same->second)));
  }
  return {};
}

bool ArchiveChecker::is_regular(const std::string& rel) const {
  const auto it = m_types.find(rel);
  return it != m_types.end() && it->second == EntryType::regular;
}

expected<ArchiveSummary, ArchiveError> ArchiveChecker::finish() const {
  uint64_t steps = 0;
  // In path order, so that the error names the same link every time.
  std::set<std::string> link_paths;
  for (const auto& [path, target] : m_links) {
    link_paths.insert(path);
  }
  for (const std::string& path : link_paths) {
    const std::string& target = m_links.at(path);
    const std::string link = quoted(path) + " -> " + quoted(target);
    switch (resolve(parent_of(path), target, m_links, steps)) {
      case Resolution::inside:
        break;
      case Resolution::outside:
        return unexpected(
            invalid("symbolic link " + link + " leads out of the archive through other links"));
      case Resolution::loop:
        return unexpected(invalid("symbolic link " + link + " is part of a loop"));
      case Resolution::too_complex:
        return unexpected(invalid("symbolic links lead through each other too often to check"));
    }
  }

  ArchiveSummary summary;
  summary.entries = m_entries;
  summary.unpacked_bytes = m_bytes;
  if (!is_regular("CMakeLists.txt") && !is_regular("kiln-program.toml")) {
    std::set<std::string> roots;
    for (const auto& [path, type] : m_types) {
      roots.insert(path.substr(0, path.find('/')));
      if (roots.size() > 1) {
        break;
      }
    }
    if (roots.size() == 1) {
      // A name that only appears as a parent is a directory too.
      const auto it = m_types.find(*roots.begin());
      if (it == m_types.end() || it->second == EntryType::directory) {
        summary.top = *roots.begin();
      }
    }
  }
  const std::string prefix = summary.top.empty() ? "" : summary.top + "/";
  summary.has_cmakelists = is_regular(prefix + "CMakeLists.txt");
  summary.has_program_toml = is_regular(prefix + "kiln-program.toml");
  if (!summary.has_cmakelists && !summary.has_program_toml) {
    return unexpected(invalid("no CMakeLists.txt or kiln-program.toml at the top of the archive"));
  }
  return summary;
}

}  // namespace kiln::service
