#pragma once

#include <string>
#include <string_view>

#include "kiln/config/key_decl.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::config {

// Parses `text` (from the file, a variable or `kiln -o`) as `decl` says,
// including decl.check. The error is the reason, e.g. `expected a boolean
// (true/false), got "maybe"`.
expected<Value, std::string> parse_value(const KeyDecl& decl, std::string_view text);

// The value as `kiln -p` prints it: sizes as "5.0 GiB", lists joined by ",",
// secrets redacted.
std::string display_value(const KeyDecl& decl, const Value& value);

// The value as text that parse_value reads back to the same value.
std::string value_text(const KeyDecl& decl, const Value& value);

}  // namespace kiln::config
