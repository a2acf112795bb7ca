#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/cache/file_checker.hpp"
#include "kiln/cache/manifest.hpp"
#include "kiln/compiler/args.hpp"
#include "kiln/compiler/compiler_info.hpp"
#include "kiln/util/environment.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::cache {

// The files a compilation read besides its source, as found after the
// preprocessor or the compile ran (docs/direct-mode.md).
struct Includes {
  std::vector<Manifest::FileRecord> files;
  std::vector<Manifest::DirRecord> dirs;
  std::vector<util::Digest> digests;  // of files, for the depend-mode key
  bool has_date = false;
  bool has_time = false;
  bool too_new = false;  // modified during the compilation
  bool unreadable = false;
};

// What the keys of one compilation are computed from. The keys are free
// functions of these, so a worker or the compile service computes and checks
// the key of a client's compilation as the client does, with two exceptions
// read from the host that computes the key: the CPU description that
// -march=native resolves against (/proc/cpuinfo), and the local date of a
// source using __DATE__ (the process's time zone). The cluster client sends
// both with a job that needs them (issue 9).
struct KeyInputs {
  const compiler::CompilerInfo& compiler;
  const compiler::ProcessedArgs& args;
  const util::Environment& env;  // the client's environment
  const std::string& cwd;        // the client's working directory (absolute)
  bool hash_dir = true;          // configuration key hash_dir
  FileChecker& files;            // stats and content hashes, relative to cwd
};

// Whether SOURCE_DATE_EPOCH fixes __DATE__ and __TIME__ (it is in the key).
bool time_macros_fixed(const util::Environment& env);

// The local date of a wall-clock time as YYYYMMDD.
int64_t local_date(int64_t unix_ns);

// The tools a -B directory may provide, as paths (existing or not).
std::vector<std::string> tool_files(const compiler::ProcessedArgs& args);

// Everything but the source and its includes: the compiler's identity, the
// arguments that change the output, files named by options, the environment
// variables that change the output, the working directory where it ends up
// in the object.
void hash_common_info(util::Hasher& h, const KeyInputs& in);

// The direct-mode key of the manifest.
struct ManifestKey {
  // nullopt: the source cannot be read (no direct mode; the compiler will say why).
  std::optional<util::Digest> digest;
  bool source_has_date = false;  // __DATE__ in the source, not fixed
};
// nullopt if the source itself uses __TIME__ or __TIMESTAMP__ and
// SOURCE_DATE_EPOCH does not fix them: not cacheable. `today` (local_date)
// goes into the key of a source using __DATE__.
std::optional<ManifestKey> manifest_key(const KeyInputs& in, int64_t today);

// The depend-mode result key: the manifest key and every include's bytes.
// `date` (non-zero) when a dated include is not fixed by SOURCE_DATE_EPOCH.
util::Digest depend_result_key(const util::Digest& manifest_key, const Includes& includes,
                               int64_t date);

// The preprocessor-mode result key: common info, the preprocessor's output
// and the bytes of the source and of every file it read.
util::Digest cpp_result_key(const KeyInputs& in, std::string_view cpp_out, std::string_view cpp_err,
                            const Includes& includes);

// Whether the environment variable `name` changes what the compiler
// produces (CPATH, SOURCE_DATE_EPOCH, LANG, LC_*, ...): those are in the key,
// and those are what a compile run elsewhere is given.
bool is_output_environment(std::string_view name);

}  // namespace kiln::cache
