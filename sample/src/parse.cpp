#include <sstream>

#include "sample/inventory.hpp"

namespace sample {

std::vector<Item> parse_items(const std::string& text) {
  std::vector<Item> items;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Item item;
    if (fields >> item.name >> item.count >> item.price) {
      items.push_back(item);
    }
  }
  return items;
}

}  // namespace sample
