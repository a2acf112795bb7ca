#pragma once

#include <string>
#include <vector>

#include "kiln/compiler/family.hpp"
#include "kiln/util/expected.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::compiler {

// What kiln knows about a compiler binary. Probing runs the compiler once
// (`--version`), so the result is remembered in <cache_dir>/compilers/, keyed by the
// binary's path, size, mtime and ctime: an upgraded compiler is probed anew.
struct CompilerInfo {
  std::string path;  // as it will be executed (absolute)
  Family family = Family::unknown;
  // Hash of the binary's content and its --version output.
  util::Digest identity;
};

enum class ProbeError { not_found, not_executable, probe_failed };

// `path` must be absolute. `cache_dir` may be empty (no remembering).
expected<CompilerInfo, ProbeError> probe_compiler(const std::string& path,
                                                  const std::string& cache_dir);

// Finds `name` (a bare name or a path) as the compiler to run. A bare name is
// searched in PATH, skipping every candidate that is kiln itself (`self` is the
// real path of the running kiln), so masquerading symlinks never call
// themselves. Returns an empty string if none is found.
std::string find_compiler(const std::string& name, const std::string& self);

// Detects the family from `cc --version` output.
Family family_from_version(const std::string& version_output);

}  // namespace kiln::compiler
