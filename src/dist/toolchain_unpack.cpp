#include "kiln/dist/toolchain_unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {
namespace {

constexpr int k_max_symlink_hops = 40;

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;

std::string join(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) {
      out += '/';
    }
    out += parts[i];
  }
  return out;
}

ArchivePtr open_archive(std::string_view archive) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), archive.data(), archive.size()) != ARCHIVE_OK) {
    return ArchivePtr(nullptr, archive_read_free);
  }
  return a;
}

std::string archive_error(struct archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "unknown error";
}

// What the first pass learnt: the symlinks (name -> target) and every name.
struct Listing {
  std::map<std::string, std::string> symlinks;
  std::set<std::string> names;
};

// A name without its trailing slash (directories may have one); empty if it
// is not a plain relative path of named components.
std::string checked_name(const char* raw) {
  std::string name = raw != nullptr ? raw : "";
  while (name.size() > 1 && name.back() == '/') {
    name.pop_back();
  }
  if (name.empty() || name.front() == '/') {
    return {};
  }
  for (const auto& part : util::split(name, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return {};
    }
  }
  return name;
}

// Whether the symlink `name` -> `target` resolves inside the root, following
// the archive's other symlinks as the kernel would with the root as "/", and
// treating ".." above the root as an escape (outside a chroot it is one).
bool stays_inside(const Listing& listing, const std::string& name, const std::string& target) {
  if (target.empty()) {
    return false;
  }
  auto parts = util::split(name, '/');
  parts.pop_back();
  std::vector<std::string> stack = target.front() == '/' ? std::vector<std::string>{} : parts;
  std::deque<std::string> pending;
  for (auto& p : util::split(target, '/')) {
    pending.push_back(std::move(p));
  }
  int hops = 0;
  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      if (stack.empty()) {
        return false;
      }
      stack.pop_back();
      continue;
    }
    stack.push_back(std::move(part));
    auto link = listing.symlinks.find(join(stack, stack.size()));
    if (link != listing.symlinks.end()) {
      if (++hops > k_max_symlink_hops || link->second.empty()) {
        return false;
      }
      stack.pop_back();
      if (link->second.front() == '/') {
        stack.clear();
      }
      auto more = util::split(link->second, '/');
      pending.insert(pending.begin(), more.begin(), more.end());
    }
  }
  return true;
}

// The first pass: reads every header (and skips the data, which the zstd
// frame's checksum checks) and refuses what must not be unpacked.
expected<Listing, std::string> check_entries(std::string_view archive, uint64_t max_bytes) {
  ArchivePtr a = open_archive(archive);
  if (!a) {
    return unexpected(std::string("not a toolchain archive (zstd-compressed tar)"));
  }
  Listing listing;
  uint64_t total = 0;
  struct archive_entry* entry = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    const char* raw = archive_entry_pathname(entry);
    std::string name = checked_name(raw);
    if (name.empty()) {
      return unexpected("refused entry \"" + std::string(raw != nullptr ? raw : "") +
                        "\": not a relative path without \".\" or \"..\"");
    }
    if (!listing.names.insert(name).second) {
      return unexpected("refused entry " + name + ": it appears twice");
    }
    if (archive_entry_hardlink(entry) != nullptr) {
      return unexpected("refused entry " + name + ": a hard link");
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFREG:
        total += static_cast<uint64_t>(std::max<la_int64_t>(archive_entry_size(entry), 0));
        if (total > max_bytes) {
          return unexpected("refused archive: it unpacks to more than " +
                            std::to_string(max_bytes) + " bytes");
        }
        break;
      case AE_IFDIR:
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        listing.symlinks[name] = target != nullptr ? target : "";
        break;
      }
      default:
        return unexpected("refused entry " + name +
                          ": not a regular file, directory or symbolic link");
    }
    if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
      return unexpected("damaged archive at " + name + ": " + archive_error(a.get()));
    }
  }
  if (r != ARCHIVE_EOF) {
    return unexpected("damaged archive: " + archive_error(a.get()));
  }
  for (const auto& name : listing.names) {
    auto parts = util::split(name, '/');
    for (size_t n = 1; n < parts.size(); ++n) {
      if (listing.symlinks.count(join(parts, n)) != 0) {
        return unexpected("refused entry " + name + ": below the symbolic link " + join(parts, n));
      }
    }
  }
  for (const auto& [name, target] : listing.symlinks) {
    if (!stays_inside(listing, name, target)) {
      return unexpected("refused entry " + name + ": the symbolic link to " + target +
                        " leads outside the toolchain");
    }
  }
  return listing;
}

// The second pass: writes the checked entries below `root`.
expected<void, std::string> extract(std::string_view archive, const std::string& root,
                                    uint64_t max_bytes) {
  ArchivePtr in = open_archive(archive);
  ArchivePtr out(archive_write_disk_new(), archive_write_free);
  if (!in) {
    return unexpected(std::string("not a toolchain archive (zstd-compressed tar)"));
  }
  // The names were checked already; libarchive checks again that nothing is
  // written through a symlink or with "..". (Not NOABSOLUTEPATHS: the names
  // it sees are below `root`, absolute.)
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  uint64_t written = 0;
  struct archive_entry* entry = nullptr;
  int r;
  while ((r = archive_read_next_header(in.get(), &entry)) == ARCHIVE_OK) {
    std::string name = checked_name(archive_entry_pathname(entry));
    archive_entry_set_pathname(entry, (root + "/" + name).c_str());
    // No set-id bits; directories the worker can always enter and remove.
    mode_t perm = archive_entry_perm(entry) & 0777;
    archive_entry_set_perm(entry, archive_entry_filetype(entry) == AE_IFDIR ? perm | 0700 : perm);
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) {
      return unexpected("cannot unpack " + name + ": " + archive_error(out.get()));
    }
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while ((r = archive_read_data_block(in.get(), &block, &size, &offset)) == ARCHIVE_OK) {
      written += size;
      if (written > max_bytes) {
        return unexpected(std::string("refused archive: it unpacks to more than the limit"));
      }
      if (archive_write_data_block(out.get(), block, size, offset) != ARCHIVE_OK) {
        return unexpected("cannot unpack " + name + ": " + archive_error(out.get()));
      }
    }
    if (r != ARCHIVE_EOF) {
      return unexpected("damaged archive at " + name + ": " + archive_error(in.get()));
    }
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) {
      return unexpected("cannot unpack " + name + ": " + archive_error(out.get()));
    }
  }
  if (r != ARCHIVE_EOF) {
    return unexpected("damaged archive: " + archive_error(in.get()));
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return unexpected("cannot unpack: " + archive_error(out.get()));
  }
  return {};
}

}  // namespace

expected<void, std::string> unpack_toolchain(std::string_view archive, std::string_view expected_id,
                                             const std::string& dest_dir,
                                             uint64_t max_unpacked_bytes) {
  std::string id = util::Hasher().update(archive).finish().to_hex();
  if (id != expected_id) {
    return unexpected("the archive's SHA-256 is " + id + ", not the expected id " +
                      std::string(expected_id));
  }
  if (util::FileStat::lof(dest_dir).exists()) {
    return unexpected(dest_dir + " exists already");
  }
  auto checked = check_entries(archive, max_unpacked_bytes);
  if (!checked) {
    return unexpected(checked.error());
  }
  std::string tmp = dest_dir + util::unique_suffix();
  if (::mkdir(tmp.c_str(), 0755) != 0) {
    return unexpected("cannot create " + tmp + ": " + std::strerror(errno));
  }
  // Its real path: libarchive refuses to write through any symlink, also
  // one above the toolchain (a /tmp that is a link).
  char real[PATH_MAX];
  expected<void, std::string> done = {};
  if (::realpath(tmp.c_str(), real) == nullptr) {
    done = unexpected("cannot resolve " + tmp + ": " + std::strerror(errno));
  } else {
    done = extract(archive, real, max_unpacked_bytes);
  }
  if (done &&
      ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest_dir.c_str(), RENAME_NOREPLACE) != 0) {
    done = unexpected("cannot rename " + tmp + " to " + dest_dir + ": " + std::strerror(errno));
  }
  if (!done) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
  }
  return done;
}

uint64_t tree_size(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::error_code size_ec;
    if (std::filesystem::is_regular_file(it->symlink_status(size_ec))) {
      uint64_t size = it->file_size(size_ec);
      total += size_ec ? 0 : size;
    }
  }
  return total;
}

}  // namespace kiln::dist
