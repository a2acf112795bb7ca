#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kiln/storage/storage.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage {

// The directory of the plugins (libkiln-remote.so for S3 and HTTPS,
// libkiln-http.so for plain-http HTTP, libkiln-redis.so for Redis): next to
// the running kiln binary, else <binary dir>/../lib/kiln.
std::string default_plugin_dir();

// The plugin file that serves `kind` with `settings` (settings_text.hpp), in
// `dir`: the HTTP level on an http:// URL goes to the libcurl-free
// libkiln-http.so when it is installed, anything needing TLS or S3 to
// libkiln-remote.so.
std::string plugin_path_for(std::string_view kind, const std::string& settings,
                            const std::string& dir);

// Opens a remote level ("s3", "redis", "http") through its plugin in
// `plugin_dir`, loading it on first use (dlopen, kept for the life of the
// process). `settings` is the text form of settings_text.hpp. Errors are
// messages for the user.
expected<std::unique_ptr<Storage>, std::string> open_remote_storage(std::string_view kind,
                                                                    const std::string& settings,
                                                                    const std::string& plugin_dir);

}  // namespace kiln::storage
