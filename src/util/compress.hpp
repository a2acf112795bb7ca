#pragma once

#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

namespace kiln::util {

// zstd at `level` (1..19; negative levels are faster still).
std::string zstd_compress(std::string_view data, int level);

// Decompresses a zstd frame that must expand to exactly `expected_size` bytes.
// Returns false (nothing thrown) on a corrupt frame or a size mismatch.
bool zstd_decompress(std::string_view frame, size_t expected_size, std::string* out);

}  // namespace kiln::util
