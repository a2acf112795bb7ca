#pragma once

#include <string>
#include <string_view>

#include "kiln/storage/remote_settings.hpp"

namespace kiln::storage {

// Settings as text ("name=value" lines), the form in which they cross the
// boundary to the remote-storage plugin (docs/architecture.md): plain bytes,
// no C++ objects shared between two C++ runtimes.
std::string to_text(const S3Settings& s);
std::string to_text(const RedisSettings& s);
std::string to_text(const HttpSettings& s);

// Unknown names are ignored; values that do not parse keep their defaults.
S3Settings s3_settings_from_text(std::string_view text);
RedisSettings redis_settings_from_text(std::string_view text);
HttpSettings http_settings_from_text(std::string_view text);

}  // namespace kiln::storage
