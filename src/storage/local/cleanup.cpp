#include "kiln/storage/local/cleanup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <vector>

namespace kiln::storage {

namespace {

// Length of the part of a file name that names its entry: 64 hex digits and
// the kind letter.
constexpr size_t k_stem_size = 65;

enum class FileClass { other, entry, temporary };

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool is_fan_out_name(std::string_view name) {
  return name.size() == 2 && is_lower_hex(name[0]) && is_lower_hex(name[1]);
}

FileClass classify(std::string_view name) {
  if (name.size() < k_stem_size) {
    return FileClass::other;
  }
  for (size_t i = 0; i < k_stem_size - 1; ++i) {
    if (!is_lower_hex(name[i])) {
      return FileClass::other;
    }
  }
  if (name[k_stem_size - 1] != 'R' && name[k_stem_size - 1] != 'M') {
    return FileClass::other;
  }
  if (name.find(".tmp.", k_stem_size) != std::string_view::npos) {
    return FileClass::temporary;
  }
  return FileClass::entry;
}

int64_t mtime_ns_of(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
}

int64_t disk_size_of(const struct stat& st) {
  return static_cast<int64_t>(st.st_blocks) * 512;
}

struct ScannedFile {
  std::string path;
  int64_t mtime_ns = 0;
  int64_t disk_size = 0;
};

// Opens `name` under `parent` as a directory (no symlinks followed) for reading.
DIR* open_directory(int parent, const char* name) {
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return nullptr;
  }
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
  }
  return d;
}

std::vector<std::string> fan_out_names(DIR* d) {
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    if (is_fan_out_name(e->d_name)) {
      names.emplace_back(e->d_name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Calls visit(ScannedFile, FileClass) for every regular entry or temporary
// file in the fan-out directories <dir>/<xx>/<yy>/.
template <typename Visit>
void scan(const std::string& dir, Visit visit) {
  DIR* root = open_directory(AT_FDCWD, dir.c_str());
  if (root == nullptr) {
    return;
  }
  for (const std::string& n1 : fan_out_names(root)) {
    DIR* d1 = open_directory(::dirfd(root), n1.c_str());
    if (d1 == nullptr) {
      continue;
    }
    for (const std::string& n2 : fan_out_names(d1)) {
      DIR* d2 = open_directory(::dirfd(d1), n2.c_str());
      if (d2 == nullptr) {
        continue;
      }
      std::string prefix = dir + "/" + n1 + "/" + n2 + "/";
      while (struct dirent* e = ::readdir(d2)) {
        FileClass c = classify(e->d_name);
        struct stat st;
        if (c == FileClass::other ||
            ::fstatat(::dirfd(d2), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode)) {
          continue;
        }
        visit(ScannedFile{prefix + e->d_name, mtime_ns_of(st), disk_size_of(st)}, c);
      }
      ::closedir(d2);
    }
    ::closedir(d1);
  }
  ::closedir(root);
}

// The files of one entry: [first, last) of the sorted file list.
struct EntryGroup {
  size_t first = 0;
  size_t last = 0;
  int64_t mtime_ns = 0;
  int64_t disk_size = 0;
};

// Groups files (sorted by path) that share their path up to the kind letter.
std::vector<EntryGroup> group_entries(const std::vector<ScannedFile>& files, size_t key_size) {
  std::vector<EntryGroup> groups;
  for (size_t i = 0; i < files.size(); ++i) {
    std::string_view key = std::string_view(files[i].path).substr(0, key_size);
    if (groups.empty() ||
        std::string_view(files[groups.back().first].path).substr(0, key_size) != key) {
      groups.push_back(EntryGroup{i, i, files[i].mtime_ns, 0});
    }
    EntryGroup& g = groups.back();
    g.last = i + 1;
    g.mtime_ns = std::max(g.mtime_ns, files[i].mtime_ns);
    g.disk_size += files[i].disk_size;
  }
  return groups;
}

// True if none of the group's files changed since the scan (a get refreshes
// the mtime, a put replaces the file): only then is it still the LRU victim.
bool unchanged_since_scan(const std::vector<ScannedFile>& files, const EntryGroup& g) {
  for (size_t i = g.first; i < g.last; ++i) {
    struct stat st;
    if (::lstat(files[i].path.c_str(), &st) == 0 && mtime_ns_of(st) > files[i].mtime_ns) {
      return false;
    }
  }
  return true;
}

// Holds an exclusive flock on a file for the lifetime of the object.
class CleanupLock {
 public:
  explicit CleanupLock(const std::string& path) {
    m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    m_open_error = m_fd < 0 ? errno : 0;
    if (m_fd < 0) {
      return;
    }
    int r;
    while ((r = ::flock(m_fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
    }
    m_held_elsewhere = r != 0 && errno == EWOULDBLOCK;
  }
  ~CleanupLock() {
    if (m_fd >= 0) {
      ::close(m_fd);
    }
  }
  CleanupLock(const CleanupLock&) = delete;
  CleanupLock& operator=(const CleanupLock&) = delete;

  int open_error() const { return m_open_error; }
  bool held_elsewhere() const { return m_held_elsewhere; }

 private:
  int m_fd = -1;
  int m_open_error = 0;
  bool m_held_elsewhere = false;
};

// Trace files of compilations that were killed before removing theirs
// (<dir>/tmp/trace.*, see cache/trace.hpp).
int remove_stale_traces(const std::string& tmp_dir, int64_t now_ns) {
  int removed = 0;
  DIR* d = ::opendir(tmp_dir.c_str());
  if (d == nullptr) {
    return 0;
  }
  while (struct dirent* e = ::readdir(d)) {
    if (std::string_view(e->d_name).starts_with("trace.")) {
      std::string path = tmp_dir + "/" + e->d_name;
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          mtime_ns_of(st) < now_ns - k_stale_temporary_ns && ::unlink(path.c_str()) == 0) {
        ++removed;
      }
    }
  }
  ::closedir(d);
  return removed;
}

}  // namespace

CleanupStats cleanup_local(const std::string& dir, int64_t max_size, double target_fraction,
                           int64_t now_ns) {
  CleanupStats stats;
  CleanupLock lock(dir + "/cleanup.lock");
  if (lock.open_error() == ENOENT || lock.open_error() == ENOTDIR) {
    return stats;  // no cache directory: nothing to clean
  }
  if (lock.held_elsewhere()) {
    stats.skipped_locked = true;
    return stats;
  }
  // Any other failure to lock (read-only directory, ...): clean up anyway, at
  // worst two cleanups race, which unlink tolerates.

  std::vector<ScannedFile> files;
  scan(dir, [&](ScannedFile f, FileClass c) {
    if (c == FileClass::temporary) {
      if (f.mtime_ns < now_ns - k_stale_temporary_ns && ::unlink(f.path.c_str()) == 0) {
        ++stats.stale_temporaries_removed;
      }
      return;
    }
    ++stats.files_before;
    stats.size_before += f.disk_size;
    files.push_back(std::move(f));
  });
  stats.stale_temporaries_removed += remove_stale_traces(dir + "/tmp", now_ns);
  stats.files_after = stats.files_before;
  stats.size_after = stats.size_before;
  if (max_size <= 0 || stats.size_before <= max_size) {
    return stats;
  }

  if (!(target_fraction >= 0.0 && target_fraction <= 1.0)) {
    target_fraction = 1.0;
  }
  auto target = static_cast<int64_t>(static_cast<double>(max_size) * target_fraction);

  std::sort(files.begin(), files.end(),
            [](const ScannedFile& a, const ScannedFile& b) { return a.path < b.path; });
  std::vector<EntryGroup> groups = group_entries(files, dir.size() + 7 + k_stem_size);
  std::sort(groups.begin(), groups.end(), [&](const EntryGroup& a, const EntryGroup& b) {
    if (a.mtime_ns != b.mtime_ns) {
      return a.mtime_ns < b.mtime_ns;
    }
    return files[a.first].path < files[b.first].path;
  });

  for (const EntryGroup& g : groups) {
    if (stats.size_after <= target) {
      break;
    }
    if (!unchanged_since_scan(files, g)) {
      continue;
    }
    for (size_t i = g.first; i < g.last; ++i) {
      bool removed = ::unlink(files[i].path.c_str()) == 0;
      if (removed) {
        ++stats.files_removed;
        stats.size_removed += files[i].disk_size;
      }
      if (removed || errno == ENOENT) {
        --stats.files_after;
        stats.size_after -= files[i].disk_size;
      }
    }
  }
  return stats;
}

CleanupStats measure_local(const std::string& dir) {
  CleanupStats stats;
  scan(dir, [&](const ScannedFile& f, FileClass c) {
    if (c == FileClass::entry) {
      ++stats.files_before;
      stats.size_before += f.disk_size;
    }
  });
  stats.files_after = stats.files_before;
  stats.size_after = stats.size_before;
  return stats;
}

int wipe_local(const std::string& dir) {
  int removed = 0;
  scan(dir, [&](const ScannedFile& f, FileClass c) {
    if (::unlink(f.path.c_str()) == 0 && c == FileClass::entry) {
      ++removed;
    }
  });
  return removed;
}

}  // namespace kiln::storage
