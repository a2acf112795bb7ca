#include "kiln/cache/manifest.hpp"

#include <map>
#include <tuple>

#include "kiln/util/path.hpp"
#include "kiln/util/serial.hpp"

namespace kiln::cache {

namespace {

constexpr uint32_t k_manifest_version = 2;

bool stat_matches(const Manifest::FileRecord& f, const util::FileStat& st) {
  return f.has_stat && st.dev == f.dev && st.ino == f.ino && st.size == f.size &&
         st.mtime_ns == f.mtime_ns && st.ctime_ns == f.ctime_ns;
}

enum class DirMatch { unchanged, names_absent, name_present };

// The directory is stat'ed before its names: a name created after that stat
// changes the directory again, which a later look-up sees.
DirMatch dir_matches(const Manifest::DirRecord& d, FileChecker& checker) {
  const util::FileStat& st = checker.stat(d.path);
  if (d.missing ? !st.exists()
                : (d.trusted && st.is_directory() && st.dev == d.dev && st.ino == d.ino &&
                   st.mtime_ns == d.mtime_ns && st.ctime_ns == d.ctime_ns)) {
    return DirMatch::unchanged;  // nothing was added or removed
  }
  for (const auto& name : d.absent) {
    if (checker.stat(util::join_path(d.path, name)).exists()) {
      return DirMatch::name_present;
    }
  }
  return DirMatch::names_absent;
}

auto file_tuple(const Manifest::FileRecord& f) {
  return std::tuple(f.path, f.digest.bytes, f.has_stat, f.dev, f.ino, f.size, f.mtime_ns,
                    f.ctime_ns);
}

auto dir_tuple(const Manifest::DirRecord& d) {
  return std::tuple(d.path, d.missing, d.trusted, d.dev, d.ino, d.mtime_ns, d.ctime_ns, d.absent);
}

}  // namespace

Manifest::DirRecord Manifest::dir_record(const std::string& path, std::vector<std::string> absent,
                                         FileChecker& checker, int64_t trust_before_ns) {
  DirRecord d;
  d.path = path;
  d.absent = std::move(absent);
  const util::FileStat& st = checker.stat(path);
  if (!st.is_directory()) {
    d.missing = true;
    return d;
  }
  d.dev = st.dev;
  d.ino = st.ino;
  d.mtime_ns = st.mtime_ns;
  d.ctime_ns = st.ctime_ns;
  d.trusted = st.mtime_ns < trust_before_ns && st.ctime_ns < trust_before_ns;
  return d;
}

uint32_t Manifest::intern(const FileRecord& f) {
  for (uint32_t i = 0; i < m_files.size(); ++i) {
    if (file_tuple(m_files[i]) == file_tuple(f)) {
      return i;
    }
  }
  m_files.push_back(f);
  return static_cast<uint32_t>(m_files.size() - 1);
}

uint32_t Manifest::intern(const DirRecord& d) {
  for (uint32_t i = 0; i < m_dirs.size(); ++i) {
    if (dir_tuple(m_dirs[i]) == dir_tuple(d)) {
      return i;
    }
  }
  m_dirs.push_back(d);
  return static_cast<uint32_t>(m_dirs.size() - 1);
}

void Manifest::add(std::vector<FileRecord> files, std::vector<DirRecord> dirs,
                   const util::Digest& result_key, int64_t date) {
  std::erase_if(m_entries, [&](const Entry& e) { return e.result_key == result_key; });
  // Index existing records once so that interning stays linear in practice.
  std::map<decltype(file_tuple(files.front())), uint32_t> file_index;
  for (uint32_t i = 0; i < m_files.size(); ++i) {
    file_index.emplace(file_tuple(m_files[i]), i);
  }
  Entry e;
  e.result_key = result_key;
  e.date = date;
  for (auto& f : files) {
    auto t = file_tuple(f);
    auto it = file_index.find(t);
    if (it == file_index.end()) {
      m_files.push_back(std::move(f));
      it = file_index.emplace(t, static_cast<uint32_t>(m_files.size() - 1)).first;
    }
    e.files.push_back(it->second);
  }
  for (auto& d : dirs) {
    e.dirs.push_back(intern(d));
  }
  m_entries.push_back(std::move(e));
  if (m_entries.size() > k_max_entries) {
    m_entries.erase(m_entries.begin(), m_entries.begin() + static_cast<std::ptrdiff_t>(
                                                               m_entries.size() - k_max_entries));
  }
  compact();
}

void Manifest::compact() {
  std::vector<int64_t> file_map(m_files.size(), -1);
  std::vector<int64_t> dir_map(m_dirs.size(), -1);
  std::vector<FileRecord> files;
  std::vector<DirRecord> dirs;
  for (auto& e : m_entries) {
    for (auto& i : e.files) {
      if (file_map[i] < 0) {
        file_map[i] = static_cast<int64_t>(files.size());
        files.push_back(m_files[i]);
      }
      i = static_cast<uint32_t>(file_map[i]);
    }
    for (auto& i : e.dirs) {
      if (dir_map[i] < 0) {
        dir_map[i] = static_cast<int64_t>(dirs.size());
        dirs.push_back(m_dirs[i]);
      }
      i = static_cast<uint32_t>(dir_map[i]);
    }
  }
  m_files = std::move(files);
  m_dirs = std::move(dirs);
}

void Manifest::refresh_stat(uint32_t index, const util::FileStat& st) {
  FileRecord& f = m_files.at(index);
  f.has_stat = true;
  f.dev = st.dev;
  f.ino = st.ino;
  f.size = st.size;
  f.mtime_ns = st.mtime_ns;
  f.ctime_ns = st.ctime_ns;
}

void Manifest::refresh_dir(uint32_t index, const util::FileStat& st) {
  DirRecord& d = m_dirs.at(index);
  d.missing = false;
  d.trusted = true;
  d.dev = st.dev;
  d.ino = st.ino;
  d.mtime_ns = st.mtime_ns;
  d.ctime_ns = st.ctime_ns;
}

std::optional<util::Digest> Manifest::lookup(FileChecker& checker, int64_t today, int64_t* rehashed,
                                             std::vector<uint32_t>* matched_by_content,
                                             std::vector<uint32_t>* dirs_checked_by_name) const {
  // 0 unknown, 1 matches, 2 differs
  std::vector<uint8_t> file_state(m_files.size(), 0);
  std::vector<uint8_t> dir_state(m_dirs.size(), 0);
  int64_t hashed = 0;
  std::optional<util::Digest> found;
  for (auto it = m_entries.rbegin(); it != m_entries.rend() && !found; ++it) {
    const Entry& e = *it;
    if (e.date != 0 && e.date != today) {
      continue;
    }
    bool ok = true;
    for (uint32_t i : e.dirs) {
      if (dir_state[i] == 0) {
        DirMatch match = dir_matches(m_dirs[i], checker);
        dir_state[i] = match == DirMatch::name_present ? 2 : 1;
        if (match == DirMatch::names_absent && dirs_checked_by_name) {
          dirs_checked_by_name->push_back(i);
        }
      }
      if (dir_state[i] != 1) {
        ok = false;
        break;
      }
    }
    for (size_t k = 0; ok && k < e.files.size(); ++k) {
      uint32_t i = e.files[k];
      if (file_state[i] == 0) {
        const FileRecord& f = m_files[i];
        const util::FileStat& st = checker.stat(f.path);
        if (!st.is_regular() || st.size != f.size) {
          file_state[i] = 2;
        } else if (stat_matches(f, st)) {
          file_state[i] = 1;
        } else {
          ++hashed;
          const auto& content = checker.content(f.path);
          file_state[i] = content && content->digest == f.digest ? 1 : 2;
          if (file_state[i] == 1 && matched_by_content) {
            matched_by_content->push_back(i);
          }
        }
      }
      ok = file_state[i] == 1;
    }
    if (ok) {
      found = e.result_key;
    }
  }
  if (rehashed) {
    *rehashed = hashed;
  }
  return found;
}

std::string Manifest::serialize() const {
  util::Writer w;
  w.u32(k_manifest_version);
  w.u32(static_cast<uint32_t>(m_files.size()));
  for (const auto& f : m_files) {
    w.bytes(f.path);
    w.raw(f.digest.bytes.data(), f.digest.bytes.size());
    w.u8(f.has_stat ? 1 : 0);
    w.u64(f.dev);
    w.u64(f.ino);
    w.i64(f.size);
    w.i64(f.mtime_ns);
    w.i64(f.ctime_ns);
  }
  w.u32(static_cast<uint32_t>(m_dirs.size()));
  for (const auto& d : m_dirs) {
    w.bytes(d.path);
    w.u8(d.missing ? 1 : 0);
    w.u8(d.trusted ? 1 : 0);
    w.u64(d.dev);
    w.u64(d.ino);
    w.i64(d.mtime_ns);
    w.i64(d.ctime_ns);
    w.u32(static_cast<uint32_t>(d.absent.size()));
    for (const auto& n : d.absent) {
      w.bytes(n);
    }
  }
  w.u32(static_cast<uint32_t>(m_entries.size()));
  for (const auto& e : m_entries) {
    w.u32(static_cast<uint32_t>(e.files.size()));
    for (uint32_t i : e.files) {
      w.u32(i);
    }
    w.u32(static_cast<uint32_t>(e.dirs.size()));
    for (uint32_t i : e.dirs) {
      w.u32(i);
    }
    w.raw(e.result_key.bytes.data(), e.result_key.bytes.size());
    w.i64(e.date);
  }
  return std::move(w.str());
}

std::optional<Manifest> Manifest::parse(std::string_view payload) {
  util::Reader r(payload);
  if (r.u32() != k_manifest_version) {
    return std::nullopt;
  }
  Manifest m;
  uint32_t nf = r.u32();
  if (!r.ok() || nf > r.remaining()) {
    return std::nullopt;
  }
  m.m_files.resize(nf);
  for (auto& f : m.m_files) {
    f.path = r.bytes();
    r.raw(f.digest.bytes.data(), f.digest.bytes.size());
    f.has_stat = r.u8() != 0;
    f.dev = r.u64();
    f.ino = r.u64();
    f.size = r.i64();
    f.mtime_ns = r.i64();
    f.ctime_ns = r.i64();
  }
  uint32_t nd = r.u32();
  if (!r.ok() || nd > r.remaining()) {
    return std::nullopt;
  }
  m.m_dirs.resize(nd);
  for (auto& d : m.m_dirs) {
    d.path = r.bytes();
    d.missing = r.u8() != 0;
    d.trusted = r.u8() != 0;
    d.dev = r.u64();
    d.ino = r.u64();
    d.mtime_ns = r.i64();
    d.ctime_ns = r.i64();
    uint32_t na = r.u32();
    if (!r.ok() || na > r.remaining()) {
      return std::nullopt;
    }
    d.absent.resize(na);
    for (auto& n : d.absent) {
      n = r.bytes();
    }
  }
  uint32_t ne = r.u32();
  if (!r.ok() || ne > r.remaining()) {
    return std::nullopt;
  }
  m.m_entries.resize(ne);
  for (auto& e : m.m_entries) {
    uint32_t n = r.u32();
    if (!r.ok() || n > r.remaining()) {
      return std::nullopt;
    }
    e.files.resize(n);
    for (auto& i : e.files) {
      i = r.u32();
      if (i >= nf) {
        return std::nullopt;
      }
    }
    n = r.u32();
    if (!r.ok() || n > r.remaining()) {
      return std::nullopt;
    }
    e.dirs.resize(n);
    for (auto& i : e.dirs) {
      i = r.u32();
      if (i >= nd) {
        return std::nullopt;
      }
    }
    r.raw(e.result_key.bytes.data(), e.result_key.bytes.size());
    e.date = r.i64();
  }
  if (!r.ok() || !r.at_end()) {
    return std::nullopt;
  }
  return m;
}

}  // namespace kiln::cache
