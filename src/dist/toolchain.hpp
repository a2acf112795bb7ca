#pragma once

#include <string>
#include <vector>

#include "kiln/util/expected.hpp"

// The client's side of toolchains (docs/dist-protocol.md, "Toolchains"): the
// compiler a job needs, packed so that a worker that lacks it can run it in a
// sandbox whose root is the unpacked archive.
namespace kiln::dist {

struct Toolchain {
  // Lowercase hex SHA-256 of `archive`: what the scheduler and the workers
  // know the toolchain by.
  std::string id;
  // A zstd-compressed tar (pax), deterministic: the same compiler files give
  // the same bytes.
  std::string archive;
  // The absolute path of every entry of the archive, sorted: regular files
  // under their real paths and the symlinks met on the way to them.
  std::vector<std::string> files;
};

// Packs what `compiler_path` (absolute; a symlink is kept and followed) needs
// to compile with -c: the driver, GCC's cc1, cc1plus and as (asked of the
// driver with -print-prog-name; clang needs none, it assembles itself), every
// shared library they load and the dynamic loader (from ldd). Nothing for
// preprocessing or linking: a worker gets preprocessed source. Runs the
// compiler and ldd. Errors say what could not be collected or read.
expected<Toolchain, std::string> package_toolchain(const std::string& compiler_path);

// package_toolchain, remembered in <cache_dir>/toolchains/<identity_hex>.tar.zst
// (written atomically) so that a compiler is packed once per identity
// (compiler::CompilerInfo::identity). A cached file that cannot be read or
// listed is packed anew and replaced. `identity_hex` must be hex.
expected<Toolchain, std::string> cached_toolchain(const std::string& compiler_path,
                                                  const std::string& identity_hex,
                                                  const std::string& cache_dir);

// What the client keeps of a packed toolchain between jobs: its id and where
// its archive lies. Most jobs go to workers that hold the toolchain already,
// so a job needs the id, and the archive only for an upload.
struct ToolchainRef {
  std::string id;
  std::string archive_path;
};

// cached_toolchain without reading the archive once it has been packed: the
// id is kept beside it in <cache_dir>/toolchains/<identity_hex>.id, written
// after the archive. Packs (or repairs) through cached_toolchain when either
// file is missing or the id file is not a SHA-256.
expected<ToolchainRef, std::string> cached_toolchain_ref(const std::string& compiler_path,
                                                         const std::string& identity_hex,
                                                         const std::string& cache_dir);

// The archive `ref` names, checked against its id: an error if it cannot be
// read or its SHA-256 is not the id (damaged or replaced since).
expected<std::string, std::string> read_toolchain_archive(const ToolchainRef& ref);

// read_toolchain_archive, and when that fails, the toolchain packed anew (as
// cached_toolchain does, its id remembered again). The same compiler packs
// to the same bytes, so the id a job was allocated under still holds; a
// compiler that packs to another id now (changed under the same identity) is
// an error.
expected<std::string, std::string> load_toolchain_archive(const ToolchainRef& ref,
                                                          const std::string& compiler_path,
                                                          const std::string& identity_hex,
                                                          const std::string& cache_dir);

// The absolute paths of the entries of a toolchain archive, sorted; an error
// if it is not a readable zstd-compressed tar.
expected<std::vector<std::string>, std::string> list_toolchain(std::string_view archive);

}  // namespace kiln::dist
