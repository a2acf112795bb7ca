#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::service {

// Program archives, as uploaded to kiln-server: a tar archive (pax, ustar
// or GNU), plain or compressed with gzip, zstd, xz or bzip2 (libarchive
// detects which; no other format or filter is read, and no external
// decompressor is ever run).
//
// Every entry is checked before it is written:
//   - only regular files, directories and symbolic links (hard links,
//     devices, fifos and sockets are refused);
//   - paths relative ("./" at the start is dropped), no ".." component, at
//     most k_max_member_path (1024) bytes; a path may not lead through an
//     earlier symbolic link of the archive, nor replace one;
//   - a symbolic link's target is relative and stays inside the archive's
//     root when resolved from the link's directory, lexically and also when
//     followed through the archive's other links (so no chain of links
//     leads out);
//   - at most ArchiveLimits::max_entries entries and max_unpacked_bytes of
//     regular files' content;
//   - CMakeLists.txt or kiln-program.toml at the project's top.
//
// Thread-safety: the functions share no state; any number may run at once.

struct ArchiveLimits {
  uint64_t max_unpacked_bytes = uint64_t{512} << 20;  // sum of regular files' sizes
  uint64_t max_entries = 100000;
};

// What the API answers: invalid 400, too_large 413, io 500.
enum class ArchiveProblem { invalid, too_large, io };

struct ArchiveError {
  ArchiveProblem problem;
  std::string message;  // names the entry at fault
};

struct ArchiveSummary {
  uint64_t entries = 0;
  uint64_t unpacked_bytes = 0;
  // The project's top inside the archive: "" when CMakeLists.txt or
  // kiln-program.toml is at the archive's root; "d" when the archive's root
  // holds exactly one directory d and nothing else (the usual
  // `tar czf p.tar.gz p/`).
  std::string top;
  bool has_cmakelists = false;    // <top>/CMakeLists.txt is a regular file
  bool has_program_toml = false;  // <top>/kiln-program.toml is a regular file
};

// Reads the whole archive from memory and checks every entry (above)
// without writing anything. A truncated or non-tar body, or an empty one, is
// `invalid` with libarchive's message; neither CMakeLists.txt nor
// kiln-program.toml at the top is `invalid` ("no CMakeLists.txt or
// kiln-program.toml at the top of the archive").
expected<ArchiveSummary, ArchiveError> inspect_archive(std::string_view data,
                                                       const ArchiveLimits& limits);

// Does the same checks entry by entry while extracting into `dest` (created
// if missing, must be an empty directory), with libarchive's
// ARCHIVE_EXTRACT_SECURE_SYMLINKS and _SECURE_NODOTDOT as a second guard.
// Regular files get mode 0755 when the archive gives them any executable
// bit, 0644 otherwise (no setuid, setgid or sticky bit); directories 0755;
// modification times are kept; owners, ACLs, extended attributes and file
// flags are not restored. On any error after writing began, everything
// extraction put under `dest` is removed (and `dest` too when this call
// created it). io: `dest` unusable, disk full and the like (the message
// says strerror).
expected<ArchiveSummary, ArchiveError> extract_archive(std::string_view data,
                                                       const std::string& dest,
                                                       const ArchiveLimits& limits);

// The content of the regular file `path` in the archive (relative to the
// archive's root, e.g. "p/kiln-program.toml"; a leading "./" on either side
// is ignored), the last one when the archive holds several; nullopt when
// there is none (a directory or symbolic link of that name counts as none).
// too_large when it is longer than `max_bytes`; invalid when the archive
// cannot be read. Does not check the archive's other entries: for reading
// kiln-program.toml at submission time, next to inspect_archive.
expected<std::optional<std::string>, ArchiveError> read_archive_member(std::string_view data,
                                                                       std::string_view path,
                                                                       uint64_t max_bytes);

}  // namespace kiln::service
