#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/config/registry.hpp"

namespace kiln::config {

// The markdown table of one section's keys (key, environment, default,
// meaning), one row per key in documentation order, ending in a newline.
std::string markdown_table(const Registry& registry, std::string_view section);

// A document's tables brought up to date. The document marks where each
// section's table goes:
//
//   <!-- config-table: remote -->
//   | key | ... (replaced) ...
//   <!-- end config-table -->
struct DocUpdate {
  std::string text;                           // the document with every marked table replaced
  std::vector<std::string> missing_sections;  // declared sections without a marked table
  std::vector<std::string> unknown_sections;  // marked tables of no declared section
};

DocUpdate update_doc_tables(std::string_view doc, const Registry& registry);

}  // namespace kiln::config
