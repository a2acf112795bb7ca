#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "kiln/util/expected.hpp"

struct ZSTD_DCtx_s;  // zstd.h

namespace kiln::util {

// zstd at `level` (1..19; negative levels are faster still).
std::string zstd_compress(std::string_view data, int level);

// Decompresses a zstd frame that must expand to exactly `expected_size` bytes.
// Returns false (nothing thrown) on a corrupt frame or a size mismatch.
bool zstd_decompress(std::string_view frame, size_t expected_size, std::string* out);

// Streaming zstd decompression with a small, reused output buffer, so that a
// large frame never has to be whole in memory (ccache decodes the same way).
class ZstdStream {
 public:
  enum class Status { done, stopped, corrupt };

  ZstdStream();
  ~ZstdStream();
  ZstdStream(const ZstdStream&) = delete;
  ZstdStream& operator=(const ZstdStream&) = delete;

  // Decompresses the single frame `frame`, handing the output to `sink` in
  // pieces of at most `chunk` bytes. stopped: the sink returned false.
  // corrupt: a decoding error, an incomplete frame, or bytes after the frame.
  Status decompress(std::string_view frame, size_t chunk,
                    const std::function<bool(std::string_view)>& sink);

 private:
  ::ZSTD_DCtx_s* m_ctx;
};

}  // namespace kiln::util
