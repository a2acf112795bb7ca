#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "kiln/util/expected.hpp"

namespace kiln::service {

// invalid: a malformed program id, version or SHA-256 text.
enum class ArtifactProblem { hash_mismatch, no_space, io, not_found, invalid };

struct ArtifactError {
  ArtifactProblem problem;
  std::string message;
};

// The leader's store of compiled programs' binaries, one file per program
// version:
//
//   <dir>/<program_id>/<version>          the binary (mode 0644)
//   <dir>/<program_id>/.tmp-<unique>      a binary being written
//
// <program_id> is the lowercase hyphenated UUID, <version> the decimal
// version (1, 2, ...). A binary appears under its final name only whole and
// synced (temporary file, fsync, rename, fsync of the directory), so after
// a crash a final name holds a complete binary and at most a stale
// temporary file is left, which cleanup() removes.
//
// Thread-safety: no state beyond `dir`; any number of threads and processes
// may call any method at once. Concurrent puts of one key each write their
// own temporary file, and the last rename wins with a complete file.
class ArtifactStore {
 public:
  // `dir` is <data-dir>/binaries; created on the first put.
  explicit ArtifactStore(std::string dir) : m_dir(std::move(dir)) {}

  // Writes `body` to a temporary file, computing its SHA-256 while writing;
  // compares it with `sha256_hex` (64 lowercase hex digits): hash_mismatch
  // when they differ. Then fsync, rename to the final name (over an earlier
  // upload of the same version: retrying an upload is fine), fsync of the
  // directory. ENOSPC, EDQUOT, EROFS and EFBIG are no_space, other errors
  // io. On every failure the temporary file is removed. `program_id` must be
  // a UUID text (8-4-4-4-12 lowercase hex) and `version` >= 1 (invalid
  // otherwise).
  expected<void, ArtifactError> put(std::string_view program_id, int64_t version,
                                    std::string_view sha256_hex, std::string_view body);

  struct Binary {
    std::string data;
    std::string sha256_hex;  // of `data`, computed on reading: the caller compares
  };
  // The binary and its SHA-256, recomputed on read, so that a file damaged
  // on disk shows as a different hash. not_found when there is none.
  expected<Binary, ArtifactError> get(std::string_view program_id, int64_t version) const;

  // Whether the binary is there (false for a malformed id or version).
  bool exists(std::string_view program_id, int64_t version) const;

  // Its final name (whether or not it exists).
  std::string path(std::string_view program_id, int64_t version) const;

  struct CleanupResult {
    int64_t binaries_removed = 0;
    int64_t temporaries_removed = 0;
  };
  // Removes the binaries whose (program id, version) is not in `keep`, the
  // temporary files last modified more than `stale_after` ago (younger ones
  // may be puts in progress), and per-program directories left empty.
  // Files whose names are not the store's are left alone. Errors are
  // ignored: what could not be removed is tried again at the next cleanup.
  CleanupResult cleanup(const std::set<std::pair<std::string, int64_t>>& keep,
                        std::chrono::seconds stale_after);

  const std::string& dir() const { return m_dir; }

 private:
  std::string m_dir;
};

// Whether `id` is a UUID text as the store names directories: 8-4-4-4-12
// lowercase hex digits.
bool valid_artifact_program_id(std::string_view id);

}  // namespace kiln::service
