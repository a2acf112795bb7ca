#include <iostream>

#include "sample/inventory.hpp"

int main() {
  sample::Inventory inventory;
  for (const auto& item : sample::parse_items("bolts 120 0.05\nnuts 300 0.02\ngears 4 12.50\n")) {
    inventory.add(item);
  }
  std::cout << sample::report(inventory);
  return 0;
}
