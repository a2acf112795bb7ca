#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::util {

std::vector<std::string> split(std::string_view s, char sep);
std::string_view trim(std::string_view s);
// ASCII letters to lowercase (header names, URL schemes); other bytes unchanged.
std::string lowercase(std::string_view s);

// Parses sizes such as "5G", "500M", "1.5GiB", "1024" (bytes); G/M/K are powers
// of 1024 as in ccache. Returns nullopt for anything else.
std::optional<int64_t> parse_size(std::string_view s);
std::string format_size(int64_t bytes);

std::optional<int64_t> parse_int(std::string_view s);

// Escapes any bytes for inclusion in a JSON string (without the surrounding
// quotes): the result is valid JSON and UTF-8. Well-formed UTF-8 is kept;
// control characters and bytes that are not UTF-8 become \u00XX.
std::string json_escape(std::string_view s);

// `s` as valid UTF-8 text for a database text column or JSON: every byte
// that does not start a well-formed sequence (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), and every NUL, becomes U+FFFD.
std::string to_valid_utf8(std::string_view s);

// Compares in time that depends only on the lengths: for tokens.
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace kiln::util
