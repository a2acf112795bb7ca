#include "kiln/config/doc_table.hpp"

#include <algorithm>

namespace kiln::config {

namespace {

constexpr std::string_view k_begin = "<!-- config-table: ";
constexpr std::string_view k_begin_close = " -->\n";
constexpr std::string_view k_end = "<!-- end config-table -->";

std::string default_cell(const KeyDecl& decl) {
  if (!decl.doc_default.empty()) {
    return std::string(decl.doc_default);
  }
  if (decl.default_text.empty()) {
    return "empty";
  }
  return "`" + decl.default_text + "`";
}

}  // namespace

std::string markdown_table(const Registry& registry, std::string_view section) {
  std::string out =
      "| key | environment | default | meaning |\n"
      "| --- | --- | --- | --- |\n";
  for (const auto& decl : registry.keys()) {
    if (decl.section != section) {
      continue;
    }
    out += "| `" + decl.name + "` | " + (decl.env.empty() ? "" : "`" + decl.env + "`") + " | " +
           default_cell(decl) + " | " + std::string(decl.doc) + " |\n";
  }
  return out;
}

DocUpdate update_doc_tables(std::string_view doc, const Registry& registry) {
  DocUpdate out;
  std::vector<std::string> seen;
  size_t pos = 0;
  while (true) {
    size_t begin = doc.find(k_begin, pos);
    if (begin == std::string_view::npos) {
      out.text += doc.substr(pos);
      break;
    }
    size_t name_at = begin + k_begin.size();
    size_t name_end = doc.find(k_begin_close, name_at);
    size_t end = name_end == std::string_view::npos ? name_end : doc.find(k_end, name_end);
    if (end == std::string_view::npos) {
      // An unterminated marker: leave the rest alone.
      out.text += doc.substr(pos);
      break;
    }
    std::string section(doc.substr(name_at, name_end - name_at));
    size_t body = name_end + k_begin_close.size();
    out.text += doc.substr(pos, body - pos);
    auto sections = registry.sections();
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      out.unknown_sections.push_back(section);
      out.text += doc.substr(body, end - body);
    } else {
      out.text += markdown_table(registry, section);
      seen.push_back(section);
    }
    pos = end;
  }
  for (const auto& s : registry.sections()) {
    if (std::find(seen.begin(), seen.end(), s) == seen.end()) {
      out.missing_sections.push_back(s);
    }
  }
  return out;
}

}  // namespace kiln::config
