#include "kiln/service/archive.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "kiln/service/archive_check.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::service {

namespace {

struct ReadFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using Reader = std::unique_ptr<struct archive, ReadFree>;
using Writer = std::unique_ptr<struct archive, WriteFree>;
using Entry = std::unique_ptr<struct archive_entry, EntryFree>;

ArchiveError invalid(std::string message) {
  return ArchiveError{ArchiveProblem::invalid, std::move(message)};
}

std::string libarchive_message(struct archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error";
}

// A reader of `data` for the formats and filters of archive.hpp. Filters
// are named one by one: archive_read_support_filter_all would also accept
// formats that libarchive decodes by running an external program.
expected<Reader, ArchiveError> open_reader(std::string_view data) {
  if (data.empty()) {
    return unexpected(invalid("empty body: not a tar archive"));
  }
  Reader reader(archive_read_new());
  if (!reader) {
    return unexpected(ArchiveError{ArchiveProblem::io, "libarchive: out of memory"});
  }
  archive_read_support_filter_gzip(reader.get());
  archive_read_support_filter_zstd(reader.get());
  archive_read_support_filter_xz(reader.get());
  archive_read_support_filter_bzip2(reader.get());
  archive_read_support_format_tar(reader.get());
  if (archive_read_open_memory(reader.get(), data.data(), data.size()) != ARCHIVE_OK) {
    return unexpected(invalid("not a tar archive: " + libarchive_message(reader.get())));
  }
  return reader;
}

// The next header, nullptr at the end.
expected<struct archive_entry*, ArchiveError> next_header(struct archive* reader) {
  struct archive_entry* entry = nullptr;
  const int r = archive_read_next_header(reader, &entry);
  if (r == ARCHIVE_EOF) {
    return nullptr;
  }
  // ARCHIVE_WARN: the entry was read (a name not convertible to the locale's
  // character set, an unknown pax keyword); it is checked like any other.
  if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
    return unexpected(invalid("cannot read the archive: " + libarchive_message(reader)));
  }
  return entry;
}

std::string type_name(mode_t type) {
  switch (type) {
    case AE_IFIFO:
      return "fifo";
    case AE_IFCHR:
      return "character device";
    case AE_IFBLK:
      return "block device";
    case AE_IFSOCK:
      return "socket";
    default:
      return "file of unknown type";
  }
}

ArchiveEntryInfo info_of(struct archive_entry* entry) {
  ArchiveEntryInfo info;
  const char* path = archive_entry_pathname(entry);
  info.path = path != nullptr ? path : "";
  const mode_t type = archive_entry_filetype(entry);
  if (const char* target = archive_entry_hardlink(entry); target != nullptr) {
    info.type = EntryType::hardlink;
    info.link_target = target;
  } else if (type == AE_IFREG) {
    info.type = EntryType::regular;
    const la_int64_t size = archive_entry_size(entry);
    info.size = archive_entry_size_is_set(entry) && size > 0 ? static_cast<uint64_t>(size) : 0;
  } else if (type == AE_IFDIR) {
    info.type = EntryType::directory;
  } else if (type == AE_IFLNK) {
    info.type = EntryType::symlink;
    const char* target = archive_entry_symlink(entry);
    info.link_target = target != nullptr ? target : "";
  } else {
    info.type = EntryType::other;
    info.type_name = type_name(type);
  }
  return info;
}

// An error of libarchive's disk writer: its own refusals (a symbolic link
// in the way, a ".." it found) carry no errno and are the archive's fault;
// the rest are the disk's.
ArchiveError write_error(struct archive* writer, const std::string& rel) {
  const int err = archive_errno(writer);
  std::string message = "extracting \"" + rel + "\": " + libarchive_message(writer);
  if (err > 0) {
    return ArchiveError{ArchiveProblem::io, message + ": " + std::strerror(err)};
  }
  return invalid(std::move(message));
}

// Only what extraction keeps of an entry: type, name, mode, size, mtime and
// a link's target. A fresh entry rather than the archive's, so that no
// owner, ACL, extended attribute or file flag comes along.
Entry disk_entry(struct archive_entry* from, const ArchiveEntryInfo& info,
                 const std::string& disk_path) {
  Entry entry(archive_entry_new());
  archive_entry_copy_pathname(entry.get(), disk_path.c_str());
  switch (info.type) {
    case EntryType::regular: {
      const bool executable = (archive_entry_perm(from) & 0111) != 0;
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), executable ? 0755 : 0644);
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(info.size));
      break;
    }
    case EntryType::directory:
      archive_entry_set_filetype(entry.get(), AE_IFDIR);
      archive_entry_set_perm(entry.get(), 0755);
      break;
    default:
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_perm(entry.get(), 0777);
      archive_entry_copy_symlink(entry.get(), info.link_target.c_str());
      break;
  }
  if (archive_entry_mtime_is_set(from)) {
    archive_entry_set_mtime(entry.get(), archive_entry_mtime(from), archive_entry_mtime_nsec(from));
  }
  return entry;
}

// Reads every entry's header, checks it with `checker` and hands it to
// `visit(header, info, rel)`, which consumes the entry's data (copies or
// skips it). Stops at the first error, of the archive or of `visit`.
template <typename Visit>
expected<void, ArchiveError> for_each_checked_entry(struct archive* reader, ArchiveChecker& checker,
                                                    Visit&& visit) {
  while (true) {
    auto header = next_header(reader);
    if (!header) {
      return unexpected(header.error());
    }
    if (*header == nullptr) {
      return {};
    }
    const ArchiveEntryInfo info = info_of(*header);
    auto rel = checker.add(info);
    if (!rel) {
      return unexpected(rel.error());
    }
    if (auto visited = visit(*header, info, *rel); !visited) {
      return visited;
    }
  }
}

expected<void, ArchiveError> copy_data(struct archive* reader, struct archive* writer,
                                       const std::string& rel) {
  while (true) {
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    const int r = archive_read_data_block(reader, &block, &size, &offset);
    if (r == ARCHIVE_EOF) {
      return {};
    }
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return unexpected(invalid("cannot read \"" + rel + "\": " + libarchive_message(reader)));
    }
    if (archive_write_data_block(writer, block, size, offset) != ARCHIVE_OK) {
      return unexpected(write_error(writer, rel));
    }
  }
}

// The extraction proper, into `root`: an empty directory without symbolic
// links in its path (libarchive's symlink guard checks every component).
expected<ArchiveSummary, ArchiveError> extract_into(std::string_view data, const std::string& root,
                                                    const ArchiveLimits& limits) {
  auto reader = open_reader(data);
  if (!reader) {
    return unexpected(reader.error());
  }
  Writer writer(archive_write_disk_new());
  if (!writer) {
    return unexpected(ArchiveError{ArchiveProblem::io, "libarchive: out of memory"});
  }
  // Not ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS: libarchive resolves relative
  // names against the process's working directory, which a server's threads
  // share, so the names given to it are `root` + "/" + the checked member
  // path, absolute by construction. The checker has refused absolute member
  // names already.
  archive_write_disk_set_options(writer.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                   ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                   ARCHIVE_EXTRACT_SECURE_NODOTDOT);
  ArchiveChecker checker(limits);
  auto written = for_each_checked_entry(
      reader->get(), checker,
      [&](struct archive_entry* header, const ArchiveEntryInfo& info,
          const std::string& rel) -> expected<void, ArchiveError> {
        if (rel.empty()) {
          return {};  // the root: `root` itself
        }
        Entry entry = disk_entry(header, info, root + "/" + rel);
        if (archive_write_header(writer.get(), entry.get()) != ARCHIVE_OK) {
          return unexpected(write_error(writer.get(), rel));
        }
        if (info.type == EntryType::regular) {
          if (auto copied = copy_data(reader->get(), writer.get(), rel); !copied) {
            return unexpected(copied.error());
          }
        }
        if (archive_write_finish_entry(writer.get()) != ARCHIVE_OK) {
          return unexpected(write_error(writer.get(), rel));
        }
        return {};
      });
  if (!written) {
    return unexpected(written.error());
  }
  auto summary = checker.finish();
  if (!summary) {
    return unexpected(summary.error());
  }
  // Directories get their mode and mtime here, after their content.
  if (archive_write_close(writer.get()) != ARCHIVE_OK) {
    return unexpected(write_error(writer.get(), "(directory times and modes)"));
  }
  return summary;
}

// Removes what extraction put under `root`; `root` too when `with_root`.
void remove_extracted(const std::string& root, bool with_root) {
  std::error_code ignored;
  if (with_root) {
    std::filesystem::remove_all(root, ignored);
    return;
  }
  for (const auto& child : std::filesystem::directory_iterator(root, ignored)) {
    std::filesystem::remove_all(child.path(), ignored);
  }
}

ArchiveError dest_error(const std::string& dest, const std::string& what, int err) {
  return ArchiveError{ArchiveProblem::io,
                      "extraction directory \"" + dest + "\": " + what +
                          (err != 0 ? std::string(": ") + std::strerror(err) : "")};
}

}  // namespace

expected<ArchiveSummary, ArchiveError> inspect_archive(std::string_view data,
                                                       const ArchiveLimits& limits) {
  auto reader = open_reader(data);
  if (!reader) {
    return unexpected(reader.error());
  }
  ArchiveChecker checker(limits);
  auto read = for_each_checked_entry(
      reader->get(), checker,
      [&](struct archive_entry*, const ArchiveEntryInfo& info,
          const std::string&) -> expected<void, ArchiveError> {
        // Read past the content: a body cut short shows here.
        if (archive_read_data_skip(reader->get()) != ARCHIVE_OK) {
          return unexpected(
              invalid("cannot read \"" + info.path + "\": " + libarchive_message(reader->get())));
        }
        return {};
      });
  if (!read) {
    return unexpected(read.error());
  }
  return checker.finish();
}

expected<ArchiveSummary, ArchiveError> extract_archive(std::string_view data,
                                                       const std::string& dest,
                                                       const ArchiveLimits& limits) {
  const util::FileStat stat = util::FileStat::of(dest);
  const bool created = !stat.exists();
  if (created) {
    if (auto made = util::make_directories(dest); !made) {
      return unexpected(dest_error(dest, "cannot create it", made.error()));
    }
  } else if (!stat.is_directory()) {
    return unexpected(dest_error(dest, "not a directory", 0));
  }
  std::error_code ec;
  if (!std::filesystem::is_empty(dest, ec)) {
    return unexpected(dest_error(dest, ec ? "cannot list it" : "not empty", ec.value()));
  }
  // Without symbolic links in the path, which ARCHIVE_EXTRACT_SECURE_SYMLINKS
  // would refuse to extract through.
  const std::string root = util::real_path(dest);
  if (root.empty()) {
    const int err = errno;
    if (created) {
      remove_extracted(dest, true);
    }
    return unexpected(dest_error(dest, "cannot resolve it", err));
  }
  auto summary = extract_into(data, root, limits);
  if (!summary) {
    remove_extracted(root, created);
  }
  return summary;
}

expected<std::optional<std::string>, ArchiveError> read_archive_member(std::string_view data,
                                                                       std::string_view path,
                                                                       uint64_t max_bytes) {
  auto wanted = member_path(path);
  if (!wanted || wanted->empty()) {
    return unexpected(invalid("\"" + std::string(path) + "\" cannot name a member of an archive"));
  }
  auto reader = open_reader(data);
  if (!reader) {
    return unexpected(reader.error());
  }
  std::optional<std::string> found;
  while (true) {
    auto header = next_header(reader->get());
    if (!header) {
      return unexpected(header.error());
    }
    if (*header == nullptr) {
      return found;
    }
    const ArchiveEntryInfo info = info_of(*header);
    auto rel = member_path(info.path);
    if (!rel || *rel != *wanted || info.type != EntryType::regular) {
      continue;  // libarchive skips the content at the next header
    }
    if (info.size > max_bytes) {
      return unexpected(ArchiveError{
          ArchiveProblem::too_large,
          "\"" + info.path + "\" is longer than " + std::to_string(max_bytes) + " bytes"});
    }
    std::string content(static_cast<size_t>(info.size), '\0');
    const la_ssize_t n = archive_read_data(reader->get(), content.data(), content.size());
    if (n < 0 || static_cast<uint64_t>(n) != info.size) {
      return unexpected(
          invalid("cannot read \"" + info.path + "\": " + libarchive_message(reader->get())));
    }
    found = std::move(content);
  }
}

}  // namespace kiln::service
