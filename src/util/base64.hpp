#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kiln::util {

// Standard base64 (RFC 4648, with padding): binary data kept as text, e.g.
// program archives in a database text column.
std::string base64_encode(std::string_view data);
// nullopt on a character outside the alphabet or a bad length or padding.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace kiln::util
