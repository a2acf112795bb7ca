#include "kiln/storage/entry.hpp"

#include <cstring>

#include "kiln/util/compress.hpp"
#include "kiln/util/hash.hpp"

namespace kiln::storage {

namespace {

constexpr char k_magic[4] = {'K', 'L', 'N', '1'};
constexpr size_t k_header_size = 24;
constexpr size_t k_trailer_size = 8;
constexpr uint8_t k_compression_none = 0;
constexpr uint8_t k_compression_zstd = 1;
// No entry expands beyond this; a larger size field is damage, and is refused
// before anything is allocated for it.
constexpr uint64_t k_max_payload_size = uint64_t{4} << 30;

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
  }
}

uint64_t get_u64(std::string_view in, size_t offset) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) {
    v = v << 8 | static_cast<uint8_t>(in[offset + static_cast<size_t>(i)]);
  }
  return v;
}

}  // namespace

std::string_view to_string(EntryError e) {
  switch (e) {
    case EntryError::truncated:
      return "truncated";
    case EntryError::bad_magic:
      return "bad_magic";
    case EntryError::bad_version:
      return "bad_version";
    case EntryError::wrong_kind:
      return "wrong_kind";
    case EntryError::bad_checksum:
      return "bad_checksum";
    case EntryError::bad_payload:
      return "bad_payload";
  }
  return "unknown";
}

std::string encode_entry(EntryKind kind, std::string_view payload, int level) {
  std::string compressed;
  std::string_view stored = payload;
  uint8_t compression = k_compression_none;
  if (level != 0) {
    compressed = util::zstd_compress(payload, level);
    stored = compressed;
    compression = k_compression_zstd;
  }

  std::string out;
  out.reserve(k_header_size + stored.size() + k_trailer_size);
  out.append(k_magic, sizeof k_magic);
  out += static_cast<char>(k_entry_version);
  out += static_cast<char>(kind);
  out += static_cast<char>(compression);
  out += '\0';
  put_u64(out, payload.size());
  put_u64(out, stored.size());
  out.append(stored);
  put_u64(out, util::checksum64(out));
  return out;
}

expected<CheckedEntry, EntryError> check_entry(std::string_view bytes, EntryKind kind,
                                               bool verify_checksum) {
  if (bytes.size() < k_header_size + k_trailer_size) {
    return unexpected(EntryError::truncated);
  }
  if (std::memcmp(bytes.data(), k_magic, sizeof k_magic) != 0) {
    return unexpected(EntryError::bad_magic);
  }
  if (static_cast<uint8_t>(bytes[4]) != k_entry_version || bytes[7] != '\0') {
    return unexpected(EntryError::bad_version);
  }
  uint64_t payload_size = get_u64(bytes, 8);
  uint64_t stored_size = get_u64(bytes, 16);
  uint64_t room = bytes.size() - k_header_size - k_trailer_size;
  if (stored_size > room) {
    return unexpected(EntryError::truncated);
  }
  if (stored_size < room) {
    // Trailing bytes: not an entry this code wrote.
    return unexpected(EntryError::bad_payload);
  }
  std::string_view checked = bytes.substr(0, k_header_size + stored_size);
  if (verify_checksum && util::checksum64(checked) != get_u64(bytes, k_header_size + stored_size)) {
    return unexpected(EntryError::bad_checksum);
  }
  if (static_cast<uint8_t>(bytes[5]) != static_cast<uint8_t>(kind)) {
    return unexpected(EntryError::wrong_kind);
  }
  CheckedEntry entry;
  entry.payload_size = payload_size;
  entry.stored = bytes.substr(k_header_size, stored_size);
  switch (static_cast<uint8_t>(bytes[6])) {
    case k_compression_none:
      if (payload_size != stored_size) {
        return unexpected(EntryError::bad_payload);
      }
      return entry;
    case k_compression_zstd:
      if (payload_size > k_max_payload_size) {
        return unexpected(EntryError::bad_payload);
      }
      entry.compressed = true;
      return entry;
    default:
      return unexpected(EntryError::bad_payload);
  }
}

expected<std::string, EntryError> decode_entry(std::string_view bytes, EntryKind kind) {
  auto entry = check_entry(bytes, kind);
  if (!entry) {
    return unexpected(entry.error());
  }
  if (!entry->compressed) {
    return std::string(entry->stored);
  }
  std::string out;
  if (!util::zstd_decompress(entry->stored, static_cast<size_t>(entry->payload_size), &out)) {
    return unexpected(EntryError::bad_payload);
  }
  return out;
}

StreamEnd stream_payload(const CheckedEntry& entry,
                         const std::function<bool(std::string_view)>& sink) {
  if (!entry.compressed) {
    std::string_view rest = entry.stored;
    while (!rest.empty()) {
      std::string_view piece = rest.substr(0, k_stream_chunk);
      rest.remove_prefix(piece.size());
      if (!sink(piece)) {
        return StreamEnd::stopped;
      }
    }
    return StreamEnd::done;
  }
  util::ZstdStream zstd;
  uint64_t produced = 0;
  util::ZstdStream::Status status =
      zstd.decompress(entry.stored, k_stream_chunk, [&](std::string_view piece) {
        produced += piece.size();
        return produced <= entry.payload_size && sink(piece);
      });
  switch (status) {
    case util::ZstdStream::Status::done:
      return produced == entry.payload_size ? StreamEnd::done : StreamEnd::bad_payload;
    case util::ZstdStream::Status::stopped:
      return produced > entry.payload_size ? StreamEnd::bad_payload : StreamEnd::stopped;
    case util::ZstdStream::Status::corrupt:
      break;
  }
  return StreamEnd::bad_payload;
}

}  // namespace kiln::storage
