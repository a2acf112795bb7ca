#pragma once

#include <vector>

#include "kiln/storage/chain.hpp"
#include "kiln/storage/storage_settings.hpp"

namespace kiln::storage {

// The levels of the storage chain in the configured order: `local` (may be
// null: no local level) and every remote level that is configured. Remote
// levels open through their plugin on first use. With `read_only`, no level
// is written. A level named in settings.order but not configured becomes one
// that fails to open, with a message naming the missing setting.
std::vector<StorageChain::LevelSpec> storage_levels(const StorageSettings& settings, Storage* local,
                                                    bool read_only);

}  // namespace kiln::storage
