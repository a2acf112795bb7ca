#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kiln/service/archive.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::service {

// The rules a program archive's entries must follow (archive.hpp), apart
// from libarchive: archive.cpp turns each header into an ArchiveEntryInfo
// and asks an ArchiveChecker, before anything of that entry is written.

enum class EntryType { regular, directory, symlink, hardlink, other };

// One header of the archive, as stored.
struct ArchiveEntryInfo {
  std::string path;
  EntryType type = EntryType::other;
  uint64_t size = 0;        // regular files: the size in the header
  std::string link_target;  // symlink: its target; hardlink: the linked name
  std::string type_name;    // other: "fifo", "character device", ...
};

// Longest relative member path and symbolic link target accepted. Below
// PATH_MAX with room for the extraction directory: for longer names
// libarchive's writer changes the process's working directory
// (edit_deep_directories), which a multi-threaded server cannot allow.
inline constexpr size_t k_max_member_path = 1024;

// The path of a member relative to the archive's root: leading "./"
// stripped, "." and empty components left out ("" is the root itself). An
// error saying why for an absolute path or a ".." component.
expected<std::string, std::string> member_path(std::string_view stored);

// Checks the entries of one archive in order. Not thread-safe; one per
// archive read.
class ArchiveChecker {
 public:
  explicit ArchiveChecker(const ArchiveLimits& limits) : m_limits(limits) {}

  // Checks `entry` against the rules and the entries before it (a path may
  // not pass through an earlier symbolic link, nor replace one); returns its
  // member_path.
  expected<std::string, ArchiveError> add(const ArchiveEntryInfo& entry);

  // The checks that need every entry: each symbolic link followed through
  // the archive's other links stays inside the root, and the project's top.
  expected<ArchiveSummary, ArchiveError> finish() const;

 private:
  expected<void, ArchiveError> check_place(const std::string& rel, const ArchiveEntryInfo& entry);
  bool is_regular(const std::string& rel) const;

  ArchiveLimits m_limits;
  uint64_t m_entries = 0;
  uint64_t m_bytes = 0;
  // Every member by relative path (the last entry of a path wins, as on
  // extraction); ordered, so that a path's descendants are a range.
  std::map<std::string, EntryType> m_types;
  // Symbolic links: relative path -> target.
  std::unordered_map<std::string, std::string> m_links;
};

}  // namespace kiln::service
