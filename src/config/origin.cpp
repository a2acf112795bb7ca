#include "kiln/config/origin.hpp"

namespace kiln::config {

std::string_view to_string(Origin o) {
  switch (o) {
    case Origin::default_value:
      return "default";
    case Origin::config_file:
      return "config file";
    case Origin::environment:
      return "environment";
    case Origin::command_line:
      return "command line";
  }
  return "?";
}

}  // namespace kiln::config
