#include <iomanip>
#include <sstream>

#include "sample/inventory.hpp"

namespace sample {

std::string report(const Inventory& inventory) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(2);
  for (const auto& item : inventory.sorted_by_value()) {
    out << std::setw(10) << item.name << std::setw(6) << item.count << std::setw(10)
        << item.count * item.price << "\n";
  }
  out << "total " << inventory.total_value() << "\n";
  return out.str();
}

}  // namespace sample
