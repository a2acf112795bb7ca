#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/cache/file_checker.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::cache {

// A direct-mode manifest: for one source and command line (the manifest key),
// the results seen so far, each with the headers it included (content digest
// and, where the file was old enough to trust, its stat) and the directories
// whose listing decided the include lookup. docs/storage-layout.md describes
// the format and docs/direct-mode.md the matching rules.
class Manifest {
 public:
  struct FileRecord {
    std::string path;  // as the compiler saw it (relative to cwd or absolute)
    util::Digest digest;
    bool has_stat = false;  // false: always compare by content
    uint64_t dev = 0, ino = 0;
    int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  };
  // A directory where files must stay absent for the compiler to do what it
  // did: names it looked up and did not find (docs/direct-mode.md). Checked
  // name by name when the directory's stat changed or was not trusted.
  struct DirRecord {
    std::string path;
    bool missing = false;  // the directory did not exist
    bool trusted = false;  // its stat was old enough to vouch for its contents
    uint64_t dev = 0, ino = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    std::vector<std::string> absent;  // relative to path
  };
  struct Entry {
    std::vector<uint32_t> files;  // indices into files()
    std::vector<uint32_t> dirs;   // indices into dirs()
    util::Digest result_key;
    int64_t date = 0;  // yyyymmdd (local) for __DATE__ users, else 0
  };

  // Keeps the manifest from growing without bound.
  static constexpr size_t k_max_entries = 64;

  // Adds an entry (newest last), reusing equal file and directory records and
  // dropping the oldest entries beyond k_max_entries. An entry with the same
  // result key replaces the old one.
  void add(std::vector<FileRecord> files, std::vector<DirRecord> dirs,
           const util::Digest& result_key, int64_t date);

  // The result key of the newest entry whose files and directories all match
  // what is on disk now. `today` is the current day for date-dependent entries.
  // *rehashed is set to the number of files whose stat did not match and had
  // to be hashed.
  // *matched_by_content, if given, receives the indices of files whose stat
  // differed but whose content matched (candidates for refresh_stat).
  // *dirs_checked_by_name, if given, receives the indices of directories
  // whose stat differed (or was not trusted) but whose names were all absent
  // (candidates for refresh_dir).
  std::optional<util::Digest> lookup(FileChecker& checker, int64_t today,
                                     int64_t* rehashed = nullptr,
                                     std::vector<uint32_t>* matched_by_content = nullptr,
                                     std::vector<uint32_t>* dirs_checked_by_name = nullptr) const;

  // Records the current stat of file `index` (whose content is known to match),
  // so later look-ups need not read it again.
  void refresh_stat(uint32_t index, const util::FileStat& st);
  // Records `st` (taken before its names were found absent, and old enough to
  // trust) as directory `index`'s stat, so later look-ups skip its names.
  void refresh_dir(uint32_t index, const util::FileStat& st);

  const std::vector<FileRecord>& files() const { return m_files; }
  const std::vector<DirRecord>& dirs() const { return m_dirs; }
  const std::vector<Entry>& entries() const { return m_entries; }

  std::string serialize() const;
  static std::optional<Manifest> parse(std::string_view payload);

  // A record of directory `path` (as stored) as it is now; its stat is
  // trusted only if the directory changed before `trust_before_ns`.
  static DirRecord dir_record(const std::string& path, std::vector<std::string> absent,
                              FileChecker& checker, int64_t trust_before_ns);

 private:
  uint32_t intern(const FileRecord& f);
  uint32_t intern(const DirRecord& d);
  void compact();

  std::vector<FileRecord> m_files;
  std::vector<DirRecord> m_dirs;
  std::vector<Entry> m_entries;
};

}  // namespace kiln::cache
