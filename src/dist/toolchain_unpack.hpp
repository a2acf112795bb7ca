#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

// The worker's side of a toolchain archive (dist/toolchain.hpp): checking and
// unpacking what a client sent. The archive is untrusted input.
namespace kiln::dist {

inline constexpr uint64_t k_default_max_unpacked_bytes = uint64_t{2} << 30;  // 2 GiB

// Unpacks `archive` into `dest_dir`, which must not exist yet. Checks first,
// before anything is written, that SHA-256(archive) is `expected_id` and that
// every entry is acceptable: a relative name without "." or ".." components,
// not below a symlink of the archive, a regular file, directory or symlink
// (no hard links, devices, fifos), a symlink whose target, resolved with
// `dest_dir` as the root (through the archive's other symlinks), stays inside
// it, and regular files summing to at most `max_unpacked_bytes`. Then unpacks
// into a temporary directory next to `dest_dir` and renames it into place, so
// `dest_dir` either appears whole or not at all; on any error nothing is left
// behind. Thread-safe. Errors say what was refused and why.
expected<void, std::string> unpack_toolchain(
    std::string_view archive, std::string_view expected_id, const std::string& dest_dir,
    uint64_t max_unpacked_bytes = k_default_max_unpacked_bytes);

// The bytes of the regular files under `dir` (symlinks not followed); 0 for
// a missing directory.
uint64_t tree_size(const std::string& dir);

}  // namespace kiln::dist
