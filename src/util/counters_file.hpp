#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace kiln::util {

// Named integer counters kept in a small text file ("name value" per line),
// changed under an exclusive fcntl lock so concurrent processes never lose an
// update. A missing or unparsable file reads as all zeros.
using Counters = std::map<std::string, int64_t>;

// Reads the counters (takes a shared lock). Missing file: empty map.
Counters read_counters(const std::string& path);

// Adds every value of `delta` to the file's counters, creating the file (and
// its directory) if needed. Returns false if the file cannot be written.
bool add_counters(const std::string& path, const Counters& delta);

// Replaces the file's counters with `values`.
bool write_counters(const std::string& path, const Counters& values);

}  // namespace kiln::util
