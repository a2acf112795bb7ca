#include "sample/inventory.hpp"

#include <algorithm>
#include <numeric>

namespace sample {

void Inventory::add(const Item& item) {
  auto& slot = m_items[item.name];
  slot.name = item.name;
  slot.count += item.count;
  slot.price = item.price;
}

double Inventory::total_value() const {
  return std::accumulate(m_items.begin(), m_items.end(), 0.0, [](double sum, const auto& kv) {
    return sum + kv.second.count * kv.second.price;
  });
}

std::vector<Item> Inventory::sorted_by_value() const {
  std::vector<Item> items;
  for (const auto& [name, item] : m_items) {
    items.push_back(item);
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.count * a.price > b.count * b.price;
  });
  return items;
}

}  // namespace sample
