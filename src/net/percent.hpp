#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kiln::net {

// Percent-encodes every byte but the unreserved characters A-Z a-z 0-9 - . _ ~
// (RFC 3986), with uppercase hex digits: for query strings, form bodies and
// URL path segments (S3 object keys, SigV4).
std::string percent_encode(std::string_view text);

// Decodes %XY escapes (hex digits of either case); every other byte, '+'
// included, stays as it is. nullopt for a '%' not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view text);

}  // namespace kiln::net
