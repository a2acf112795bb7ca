#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::util {

// The one hex codec of kiln (digests, cache keys, SigV4 signatures, chunk
// sizes and percent escapes in HTTP).

// The value of a hex digit of either case, -1 for any other character.
int hex_value(char c);

// Two lowercase hex digits per byte of `bytes`.
std::string to_hex(std::string_view bytes);
// The same, with uppercase digits (percent escapes).
std::string to_hex_upper(std::string_view bytes);

// `bytes` bytes from the kernel's random source (getrandom), as hex: nonces
// and id prefixes, never the same twice in practice.
std::string random_hex(size_t bytes);

// The bytes that `hex` (an even number of hex digits of either case)
// encodes; nullopt for an odd length or any other character.
std::optional<std::string> from_hex(std::string_view hex);

}  // namespace kiln::util
