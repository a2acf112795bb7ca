#pragma once

#include <vector>

#include "kiln/cache/config.hpp"
#include "kiln/storage/chain.hpp"
#include "kiln/storage/remote/settings.hpp"

namespace kiln::cache {

// The settings of each remote backend, from the configuration.
storage::S3Settings s3_settings(const Config& config);
storage::RedisSettings redis_settings(const Config& config);
storage::HttpSettings http_settings(const Config& config);

// The levels of the storage chain in the configured order: `local` (may be
// null: no local level) and every remote backend that is configured. Remote
// levels open through the plugin on first use.
std::vector<storage::StorageChain::LevelSpec> storage_levels(const Config& config,
                                                             storage::Storage* local);

// True if any remote backend is configured.
bool has_remote_storage(const Config& config);

}  // namespace kiln::cache
