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

Error Error::plain(Failure failure, std::string message) {
  Error e;
  e.failure = failure;
  e.message = std::move(message);
  return e;
}

Error Error::naming(Failure failure, std::string before, std::string key, std::string_view after) {
  Error e;
  e.failure = failure;
  e.key_at = before.size();
  e.message = std::move(before);
  e.message += after;
  e.key = std::move(key);
  return e;
}

std::string Error::text(std::string_view stand_in) const {
  if (key_at == std::string::npos || key_at > message.size()) {
    return message;
  }
  std::string out = message;
  out.insert(key_at, stand_in);
  return out;
}

std::string Key::name() const {
  std::string out = digest.to_hex();
  out += kind == EntryKind::manifest ? 'M' : 'R';
  return out;
}

std::optional<Key> Key::parse(std::string_view name) {
  Key key;
  if (name.size() != 65 || !util::Digest::from_hex(name.substr(0, 64), &key.digest)) {
    return std::nullopt;
  }
  if (name[64] == 'R') {
    key.kind = EntryKind::result;
  } else if (name[64] == 'M') {
    key.kind = EntryKind::manifest;
  } else {
    return std::nullopt;
  }
  return key;
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

expected<void, Failure> Storage::get_to(const Key& key, const Sink& sink) {
  auto value = get(key);
  if (!value) {
    return unexpected(value.error());
  }
  sink(*value);
  return {};
}

expected<bool, Failure> Storage::acquire_lease(const Key&, std::string_view,
                                               std::chrono::milliseconds) {
  return unexpected(Failure::error);
}

expected<void, Failure> Storage::release_lease(const Key&, std::string_view) {
  return unexpected(Failure::error);
}

expected<bool, Failure> Storage::lease_held(const Key&) {
  return unexpected(Failure::error);
}

}  // namespace kiln::storage
