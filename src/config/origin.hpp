#pragma once

#include <string_view>

namespace kiln::config {

// Where a value came from, for `kiln --show-config`. Later sources override
// earlier ones in this order.
enum class Origin { default_value, config_file, environment, command_line };

std::string_view to_string(Origin o);

}  // namespace kiln::config
