#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/config/error.hpp"
#include "kiln/config/registry.hpp"
#include "kiln/config/values.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::config {

inline const char* process_getenv(const char* name) {
  return std::getenv(name);
}

struct Loaded {
  Values values;              // every key; what could not be read keeps its default
  std::vector<Error> errors;  // in the order met: the file's, then the environment's
};

// Reads every key of `registry`: its default, then the TOML file at `path`
// (a missing file is an empty one), then its environment variable (set, even
// to "", overrides). Never fails as a whole: a value that cannot be used is an
// error and leaves the key as it was, so a broken file never breaks a build.
Loaded load(const Registry& registry, const std::string& path,
            const Getenv& getenv = process_getenv);

// Sets `key` to `text` in the TOML file at `path` (creating it and its
// directory), after parsing the text as the key's declaration says, and
// writes the typed value: booleans and integers as TOML booleans and
// integers, sizes as the text given ("10G"), the rest as strings. Other keys
// and values in the file are kept. On error the file is untouched.
expected<void, Error> set_in_file(const Registry& registry, const std::string& path,
                                  std::string_view key, std::string_view text);

}  // namespace kiln::config
