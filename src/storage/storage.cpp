#include "kiln/storage/storage.hpp"

namespace kiln::storage {

std::string_view to_string(Failure f) {
  switch (f) {
    case Failure::not_found:
      return "not_found";
    case Failure::timeout:
      return "timeout";
    case Failure::error:
      return "error";
    case Failure::access_denied:
      return "access_denied";
  }
  return "unknown";
}

std::string Key::name() const {
  std::string out = digest.to_hex();
  out += kind == EntryKind::manifest ? 'M' : 'R';
  return out;
}

std::string Key::relative_path() const {
  std::string n = name();
  std::string out;
  out.reserve(n.size() + 6);
  out.append(n, 0, 2);
  out += '/';
  out.append(n, 2, 2);
  out += '/';
  out += n;
  return out;
}

}  // namespace kiln::storage
