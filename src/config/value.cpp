#include "kiln/config/value.hpp"

#include "kiln/util/string.hpp"

namespace kiln::config {

namespace {

std::optional<bool> parse_bool(std::string_view v) {
  v = util::trim(v);
  if (v == "1" || v == "true" || v == "yes" || v == "on") {
    return true;
  }
  if (v == "0" || v == "false" || v == "no" || v == "off" || v.empty()) {
    return false;
  }
  return std::nullopt;
}

// "a, b or c"
std::string one_of(const std::vector<std::string>& choices, const char* last_sep) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) {
      out += i + 1 == choices.size() ? last_sep : ", ";
    }
    out += choices[i];
  }
  return out;
}

bool is_choice(const KeyDecl& decl, std::string_view v) {
  for (const auto& c : decl.choices) {
    if (c == v) {
      return true;
    }
  }
  return false;
}

std::string range_reason(const KeyDecl& decl, const char* noun) {
  std::string what = decl.unit.empty() ? std::string(noun) : std::string(decl.unit);
  constexpr int64_t k_no_max = std::numeric_limits<int64_t>::max();
  constexpr int64_t k_no_min = std::numeric_limits<int64_t>::min();
  if (decl.max != k_no_max && decl.min != k_no_min) {
    return "expected " + what + " from " + std::to_string(decl.min) + " to " +
           std::to_string(decl.max);
  }
  if (decl.min != k_no_min) {
    return "expected " + what + " from " + std::to_string(decl.min);
  }
  if (decl.max != k_no_max) {
    return "expected " + what + " up to " + std::to_string(decl.max);
  }
  return "expected " + what;
}

expected<Value, std::string> parse_typed(const KeyDecl& decl, std::string_view text) {
  switch (decl.type) {
    case Type::boolean:
      if (auto b = parse_bool(text)) {
        return Value{*b};
      }
      return unexpected(std::string("expected a boolean (true/false)"));
    case Type::integer: {
      auto n = util::parse_int(text);
      if (!n || *n < decl.min || *n > decl.max) {
        return unexpected(range_reason(decl, "an integer"));
      }
      return Value{*n};
    }
    case Type::size: {
      auto n = util::parse_size(text);
      if (!n || *n < decl.min || *n > decl.max) {
        return unexpected(std::string("expected a size such as 5G or 500M"));
      }
      return Value{*n};
    }
    case Type::string:
      return Value{std::string(text)};
    case Type::choice:
      if (!is_choice(decl, text)) {
        return unexpected("expected " + one_of(decl.choices, " or "));
      }
      return Value{std::string(text)};
    case Type::list: {
      std::vector<std::string> items;
      for (const auto& item : util::split(text, ',')) {
        auto t = util::trim(item);
        if (t.empty()) {
          continue;
        }
        if (!decl.choices.empty() && !is_choice(decl, t)) {
          return unexpected("expected a comma-separated list of " + one_of(decl.choices, ", "));
        }
        items.emplace_back(t);
      }
      return Value{std::move(items)};
    }
  }
  return unexpected(std::string("unsupported type"));
}

// "redis://:secret@host" -> "redis://:***@host"
std::string redact_url(const std::string& url) {
  auto at = url.find('@');
  auto scheme = url.find("://");
  if (at == std::string::npos || scheme == std::string::npos || at < scheme) {
    return url;
  }
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) {
    return url;
  }
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

}  // namespace

expected<Value, std::string> parse_value(const KeyDecl& decl, std::string_view text) {
  auto v = parse_typed(decl, text);
  if (v && decl.check) {
    if (auto why = decl.check(*v)) {
      return unexpected(*why + ", got \"" + std::string(text) + "\"");
    }
  }
  if (!v) {
    return unexpected(v.error() + ", got \"" + std::string(text) + "\"");
  }
  return v;
}

std::string value_text(const KeyDecl& decl, const Value& value) {
  (void)decl;
  if (const bool* b = std::get_if<bool>(&value)) {
    return *b ? "true" : "false";
  }
  if (const int64_t* n = std::get_if<int64_t>(&value)) {
    return std::to_string(*n);
  }
  if (const std::string* s = std::get_if<std::string>(&value)) {
    return *s;
  }
  std::string out;
  for (const auto& item : std::get<std::vector<std::string>>(value)) {
    out += (out.empty() ? "" : ",") + item;
  }
  return out;
}

std::string display_value(const KeyDecl& decl, const Value& value) {
  if (decl.type == Type::size) {
    return util::format_size(std::get<int64_t>(value));
  }
  std::string text = value_text(decl, value);
  switch (decl.redact) {
    case Redact::none:
      return text;
    case Redact::secret:
      return text.empty() ? "" : "(set)";
    case Redact::url_password:
      return redact_url(text);
  }
  return text;
}

}  // namespace kiln::config
