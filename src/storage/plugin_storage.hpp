#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "kiln/storage/storage.hpp"
#include "kiln/util/expected.hpp"

namespace kiln::storage {

// Where kiln looks for libkiln-remote.so: $KILN_REMOTE_PLUGIN, else next to the
// running kiln binary, else <binary dir>/../lib/kiln/.
std::string default_plugin_path();

// Opens a remote level ("s3", "redis", "http") through the plugin, loading it
// on first use (dlopen, kept for the life of the process). `settings` is the
// text form of settings_text.hpp. Errors are messages for the user.
expected<std::unique_ptr<Storage>, std::string> open_remote_storage(std::string_view kind,
                                                                   const std::string& settings,
                                                                   const std::string& plugin_path);

}  // namespace kiln::storage
