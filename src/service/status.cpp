#include "kiln/service/store.hpp"

namespace kiln::service {

std::string_view to_string(Status status) {
  switch (status) {
    case Status::pending:
      return "Pending";
    case Status::compiling:
      return "Compiling";
    case Status::success:
      return "Success";
    case Status::compile_error:
      return "CompileError";
    case Status::system_error:
      return "SystemError";
  }
  return "?";
}

std::optional<Status> parse_status(std::string_view text) {
  for (Status s : {Status::pending, Status::compiling, Status::success, Status::compile_error,
                   Status::system_error}) {
    if (to_string(s) == text) {
      return s;
    }
  }
  return std::nullopt;
}

}  // namespace kiln::service
