#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "kiln/storage/storage.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage {

// The framing of every stored entry (docs/storage-layout.md):
//
//   offset  size  field
//   0       4     magic "KLN1"
//   4       1     format version (k_entry_version)
//   5       1     kind (EntryKind)
//   6       1     compression: 0 none, 1 zstd
//   7       1     reserved, 0
//   8       8     payload size before compression (little endian)
//   16      8     stored payload size (little endian)
//   24      n     payload
//   24+n    8     XXH3-64 of bytes [0, 24+n) (little endian)
inline constexpr uint8_t k_entry_version = 1;

enum class EntryError { truncated, bad_magic, bad_version, wrong_kind, bad_checksum, bad_payload };

std::string_view to_string(EntryError e);

// Encodes `payload` with zstd at `level` (0 stores it uncompressed).
std::string encode_entry(EntryKind kind, std::string_view payload, int level);

// Checks and decodes an entry; never returns a payload from a damaged entry.
expected<std::string, EntryError> decode_entry(std::string_view bytes, EntryKind kind);

// An entry whose frame, kind and checksum are good; its payload not yet decoded.
struct CheckedEntry {
  bool compressed = false;
  uint64_t payload_size = 0;
  std::string_view stored;  // the payload as stored, inside the checked bytes
};

// Checks the frame, the kind and the checksum of `bytes` without decoding the
// payload (cheap: XXH3 over the stored bytes). verify_checksum = false skips
// the XXH3 pass, only for bytes that this process has checked already.
expected<CheckedEntry, EntryError> check_entry(std::string_view bytes, EntryKind kind,
                                               bool verify_checksum = true);

// How stream_payload ended.
enum class StreamEnd { done, stopped, bad_payload };

// The most stream_payload hands to its sink at once.
inline constexpr size_t k_stream_chunk = 256 * 1024;

// Decodes a checked entry's payload in order, in pieces of at most
// k_stream_chunk bytes, so that a large payload is never whole in memory.
// Stops as soon as `sink` returns false (StreamEnd::stopped). bad_payload: the
// stored bytes do not decode to exactly payload_size bytes; the sink may have
// seen part of the payload by then.
StreamEnd stream_payload(const CheckedEntry& entry,
                         const std::function<bool(std::string_view)>& sink);

}  // namespace kiln::storage
