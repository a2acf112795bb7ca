#pragma once
#include <map>
#include <string>
#include <vector>

namespace sample {

struct Item {
  std::string name;
  int count = 0;
  double price = 0;
};

class Inventory {
 public:
  void add(const Item& item);
  double total_value() const;
  std::vector<Item> sorted_by_value() const;

 private:
  std::map<std::string, Item> m_items;
};

std::vector<Item> parse_items(const std::string& text);
std::string report(const Inventory& inventory);

}  // namespace sample
