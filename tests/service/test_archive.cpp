#include "test_archive.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <random>
#include <stdexcept>

namespace kiln::service::test {

TarEntry TarEntry::file(std::string path, std::string content, unsigned mode) {
  TarEntry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.mode = mode;
  return e;
}

TarEntry TarEntry::dir(std::string path) {
  TarEntry e;
  e.path = std::move(path);
  e.kind = Kind::directory;
  e.mode = 0755;
  return e;
}

TarEntry TarEntry::symlink(std::string path, std::string target) {
  TarEntry e;
  e.path = std::move(path);
  e.kind = Kind::symlink;
  e.target = std::move(target);
  e.mode = 0777;
  return e;
}

TarEntry TarEntry::hardlink(std::string path, std::string target) {
  TarEntry e;
  e.path = std::move(path);
  e.kind = Kind::hardlink;
  e.target = std::move(target);
  return e;
}

TarEntry TarEntry::fifo(std::string path) {
  TarEntry e;
  e.path = std::move(path);
  e.kind = Kind::fifo;
  return e;
}

namespace {

la_ssize_t append(struct archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

void check(int r, struct archive* a, const char* what) {
  if (r != ARCHIVE_OK) {
    throw std::runtime_error(std::string(what) + ": " +
                             (archive_error_string(a) ? archive_error_string(a) : "?"));
  }
}

}  // namespace

std::string make_tar(const std::vector<TarEntry>& entries, TarFilter filter) {
  std::string out;
  struct archive* a = archive_write_new();
  switch (filter) {
    case TarFilter::none:
      break;
    case TarFilter::gzip:
      check(archive_write_add_filter_gzip(a), a, "gzip");
      break;
    case TarFilter::zstd:
      check(archive_write_add_filter_zstd(a), a, "zstd");
      break;
    case TarFilter::xz:
      check(archive_write_add_filter_xz(a), a, "xz");
      break;
    case TarFilter::bzip2:
      check(archive_write_add_filter_bzip2(a), a, "bzip2");
      break;
  }
  check(archive_write_set_format_pax_restricted(a), a, "pax");
  // No padding of the compressed stream to a 10 KiB block: zstd and xz
  // readers (as tar --zstd) refuse zeros after the last frame.
  check(archive_write_set_bytes_in_last_block(a, 1), a, "block");
  check(archive_write_open(a, &out, nullptr, append, nullptr), a, "open");
  for (const TarEntry& e : entries) {
    struct archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_perm(entry, e.mode);
    archive_entry_set_mtime(entry, e.mtime, 0);
    switch (e.kind) {
      case TarEntry::Kind::file:
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
        break;
      case TarEntry::Kind::directory:
        archive_entry_set_filetype(entry, AE_IFDIR);
        break;
      case TarEntry::Kind::symlink:
        archive_entry_set_filetype(entry, AE_IFLNK);
        archive_entry_set_symlink(entry, e.target.c_str());
        break;
      case TarEntry::Kind::hardlink:
        archive_entry_set_filetype(entry, AE_IFREG);
        archive_entry_set_hardlink(entry, e.target.c_str());
        archive_entry_set_size(entry, 0);
        break;
      case TarEntry::Kind::fifo:
        archive_entry_set_filetype(entry, AE_IFIFO);
        break;
    }
    check(archive_write_header(a, entry), a, "header");
    if (e.kind == TarEntry::Kind::file && !e.content.empty()) {
      if (archive_write_data(a, e.content.data(), e.content.size()) !=
          static_cast<la_ssize_t>(e.content.size())) {
        throw std::runtime_error("archive_write_data failed");
      }
    }
    archive_entry_free(entry);
  }
  check(archive_write_close(a), a, "close");
  archive_write_free(a);
  return out;
}

std::string incompressible(size_t size, unsigned seed) {
  std::mt19937 random(seed);
  std::string out(size, '\0');
  for (char& c : out) {
    c = static_cast<char>(random());
  }
  return out;
}

}  // namespace kiln::service::test
