#include "kiln/util/compress.hpp"

#include <zstd.h>

namespace kiln::util {

std::string zstd_compress(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), level);
  if (ZSTD_isError(n)) {
    // Only possible with a too small buffer, which compressBound rules out.
    return {};
  }
  out.resize(n);
  return out;
}

bool zstd_decompress(std::string_view frame, size_t expected_size, std::string* out) {
  out->resize(expected_size);
  size_t n = ZSTD_decompress(out->data(), out->size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != expected_size) {
    out->clear();
    return false;
  }
  return true;
}

}  // namespace kiln::util
