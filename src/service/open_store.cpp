// open_store: the store URL's scheme picks the backend.

#include "kiln/service/store.hpp"

namespace kiln::service {

expected<std::unique_ptr<Store>, std::string> open_store(std::string_view url) {
  constexpr std::string_view k_usage =
      "expected sqlite:///absolute/path.db or postgresql://user@host:port/database";
  std::unique_ptr<Database> database;
  if (url.starts_with("sqlite://")) {
    const std::string path(url.substr(9));
    if (path.size() < 2 || path[0] != '/' || path.back() == '/') {
      return unexpected("store URL " + std::string(url) + ": the SQLite file must be an absolute " +
                        "path (three slashes: sqlite:///var/lib/kiln/state.db); " +
                        std::string(k_usage));
    }
    auto opened = open_sqlite(path);
    if (!opened) {
      return unexpected(opened.error());
    }
    database = std::move(*opened);
  } else if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    auto opened = open_postgres(std::string(url));
    if (!opened) {
      return unexpected(opened.error());
    }
    database = std::move(*opened);
  } else {
    // Not echoed whole: a URL may carry a password.
    const auto scheme_end = url.find("://");
    const std::string scheme =
        scheme_end == std::string_view::npos ? "none" : std::string(url.substr(0, scheme_end));
    return unexpected("store URL with an unsupported scheme (" + scheme +
                      "): " + std::string(k_usage));
  }
  return Store::open(std::move(database));
}

}  // namespace kiln::service
