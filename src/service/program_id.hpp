#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kiln::service {

// Program ids and the shard function (docs/service-store.md, "Shards").

// A new random UUID (version 4, RFC 9562) from the kernel's random source,
// lowercase and hyphenated: "3f2b8c1e-9d4a-4b6f-8e2d-1a2b3c4d5e6f".
std::string new_program_id();

// The shard key of a program id: its first 8 bytes (the first 16 hex
// digits, hyphens skipped) as an unsigned big-endian integer. nullopt when
// `id` is not a hyphenated UUID.
std::optional<uint64_t> shard_key(std::string_view id);

// Which replica of `workers` compiles the program `id`: shard_key(id) %
// workers. Stable: it depends only on the id, never on the database or the
// order of programs. nullopt for a malformed id or workers == 0.
std::optional<uint32_t> shard_of(std::string_view id, uint32_t workers);

}  // namespace kiln::service
