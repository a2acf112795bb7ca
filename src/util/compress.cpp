#include "kiln/util/compress.hpp"

#include <zstd.h>

#include <memory>

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

ZstdStream::ZstdStream() : m_ctx(ZSTD_createDCtx()) {}

ZstdStream::~ZstdStream() {
  ZSTD_freeDCtx(m_ctx);
}

ZstdStream::Status ZstdStream::decompress(std::string_view frame, size_t chunk,
                                          const std::function<bool(std::string_view)>& sink) {
  if (!m_ctx) {
    return Status::corrupt;
  }
  ZSTD_DCtx_reset(m_ctx, ZSTD_reset_session_only);
  std::unique_ptr<char[]> buffer(new char[chunk]);
  ZSTD_inBuffer in{frame.data(), frame.size(), 0};
  while (true) {
    ZSTD_outBuffer out{buffer.get(), chunk, 0};
    size_t ret = ZSTD_decompressStream(m_ctx, &out, &in);
    if (ZSTD_isError(ret)) {
      return Status::corrupt;
    }
    if (out.pos > 0 && !sink(std::string_view(buffer.get(), out.pos))) {
      return Status::stopped;
    }
    if (ret == 0) {
      // The frame is complete; anything after it is not ours.
      return in.pos == in.size ? Status::done : Status::corrupt;
    }
    if (in.pos == in.size && out.pos < chunk) {
      // All input consumed and the output not full: the frame is cut short.
      return Status::corrupt;
    }
  }
}

}  // namespace kiln::util
