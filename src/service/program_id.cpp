#include "kiln/service/program_id.hpp"

#include "kiln/util/hex.hpp"

namespace kiln::service {

std::string new_program_id() {
  std::string bytes = *util::from_hex(util::random_hex(16));
  // Version 4 in the high nibble of byte 6, variant 10 in the top bits of byte 8.
  bytes[6] = static_cast<char>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<char>((bytes[8] & 0x3f) | 0x80);
  const std::string hex = util::to_hex(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

std::optional<uint64_t> shard_key(std::string_view id) {
  // 8-4-4-4-12 hex digits.
  if (id.size() != 36) {
    return std::nullopt;
  }
  uint64_t key = 0;
  int digits = 0;
  for (size_t i = 0; i < id.size(); ++i) {
    const bool hyphen_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (hyphen_here) {
      if (id[i] != '-') {
        return std::nullopt;
      }
      continue;
    }
    const int value = util::hex_value(id[i]);
    if (value < 0) {
      return std::nullopt;
    }
    if (digits < 16) {
      key = (key << 4) | static_cast<uint64_t>(value);
    }
    ++digits;
  }
  return key;
}

std::optional<uint32_t> shard_of(std::string_view id, uint32_t workers) {
  const auto key = shard_key(id);
  if (!key || workers == 0) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(*key % workers);
}

}  // namespace kiln::service
