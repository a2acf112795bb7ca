// Stage: from_cache, the look-ups of manifests and results.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "kiln/cache/compilation.hpp"
#include "kiln/storage/entry.hpp"
#include "kiln/util/hex.hpp"

namespace kiln::cache {

std::optional<std::string> Compilation::get_entry(const storage::Key& key, bool decode) {
  // The chain asks whether a value is usable before it counts a hit (and before
  // it backfills faster levels). A manifest is decoded here and its payload
  // kept; a result is only checked (frame and checksum), and replay decodes it
  // while writing its files.
  std::optional<std::string> payload;
  auto value = m_chain->get(key, [&](std::string_view bytes) {
    storage::EntryError error{};
    if (decode) {
      auto decoded = storage::decode_entry(bytes, key.kind);
      if (decoded) {
        payload = std::move(*decoded);
        return true;
      }
      error = decoded.error();
    } else {
      auto checked = storage::check_entry(bytes, key.kind);
      if (checked) {
        return true;
      }
      error = checked.error();
    }
    // Never served: the chain removes it so that a good one is stored next.
    m_stats.add(Counter::corrupt_entry);
    m_log.event("corrupt_entry", {{"key", key.name()}, {"error", storage::to_string(error)}});
    return false;
  });
  if (!value) {
    return std::nullopt;
  }
  return decode ? std::move(payload) : std::move(value);
}

bool Compilation::put_entry(const storage::Key& key, std::string_view entry) {
  if (m_chain->put(key, entry) == 0) {
    m_log.event("storage_error", {{"op", "put"}, {"key", key.name()}});
    return false;
  }
  return true;
}

std::optional<Manifest> Compilation::load_manifest() {
  storage::Key key{*m_manifest_key, storage::EntryKind::manifest};
  auto payload = get_entry(key, true);
  if (!payload) {
    return std::nullopt;
  }
  auto manifest = Manifest::parse(*payload);
  if (!manifest) {
    // Removed where it came from, not only from the local level.
    m_stats.add(Counter::corrupt_entry);
    m_log.event("corrupt_entry", {{"key", key.name()}, {"error", "bad_manifest"}});
    m_chain->discard(key);
  }
  return manifest;
}

std::optional<std::string> Compilation::load_result(const util::Digest& result_key) {
  return get_entry(storage::Key{result_key, storage::EntryKind::result}, false);
}

std::optional<std::pair<std::string, util::Digest>> Compilation::from_cache_direct() {
  // Kept in m_manifest: on a miss, update_manifest adds to it without a
  // second (possibly remote) read.
  m_manifest = load_manifest();
  m_manifest_looked_up = true;
  if (!m_manifest) {
    return std::nullopt;
  }
  int64_t rehashed = 0;
  std::vector<uint32_t> matched_by_content;
  std::vector<uint32_t> dirs_checked_by_name;
  auto result_key =
      m_manifest->lookup(m_checker, today(), &rehashed, &matched_by_content, &dirs_checked_by_name);
  m_log.event("manifest_lookup", {{"entries", static_cast<int64_t>(m_manifest->entries().size())},
                                  {"rehashed", rehashed},
                                  {"found", result_key ? "yes" : "no"}});
  if (!result_key) {
    return std::nullopt;
  }
  auto result = load_result(*result_key);
  if (!result) {
    return std::nullopt;
  }
  refresh_manifest(*m_manifest, matched_by_content, dirs_checked_by_name);
  return std::pair{std::move(*result), *result_key};
}

std::optional<std::pair<std::string, util::Digest>> Compilation::wait_for_inflight() {
  using namespace std::chrono;
  const storage::Key lease{*m_manifest_key, storage::EntryKind::manifest};
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::string holder =
      std::string(host) + ":" + std::to_string(::getpid()) + ":" + util::random_hex(8);
  // The lease outlives a holder that dies (on a remote level) by at most the
  // wait: by then every waiter compiles anyway.
  const milliseconds ttl = seconds(m_cfg.inflight_wait_s);
  auto state = m_chain->acquire_lease(lease, holder, ttl);
  if (state == storage::StorageChain::Lease::taken) {
    m_lease_holder = std::move(holder);
    return std::nullopt;
  }
  if (state == storage::StorageChain::Lease::unavailable) {
    return std::nullopt;
  }
  const auto started = steady_clock::now();
  const auto deadline = started + ttl;
  m_log.event("inflight_wait", {{"level", m_chain->lease_level_name()}});
  auto waited_ms = [&] {
    return static_cast<int64_t>(duration_cast<milliseconds>(steady_clock::now() - started).count());
  };
  milliseconds poll(20);
  while (steady_clock::now() < deadline) {
    std::this_thread::sleep_for(poll);
    poll = std::min(poll * 2, milliseconds(250));
    auto held = m_chain->lease_held(lease);
    if (!held) {
      break;  // the level cannot tell any more: compile
    }
    if (*held) {
      continue;
    }
    // The holder is done: its result is stored, or it could not be (it
    // failed, or what it compiled cannot be cached). Then every waiter
    // compiles at once, without a lease: one at a time would serialize them.
    auto found = from_cache_direct();
    m_log.event("inflight_done", {{"waited_ms", waited_ms()}, {"found", found ? "yes" : "no"}});
    return found;
  }
  if (steady_clock::now() >= deadline) {
    m_stats.add(Counter::inflight_wait_timeout);
    m_log.warn("inflight_wait_timeout", {{"waited_ms", waited_ms()}});
  }
  return std::nullopt;
}

void Compilation::release_inflight() {
  if (!m_lease_holder.empty() && m_chain && m_manifest_key) {
    m_chain->release_lease(storage::Key{*m_manifest_key, storage::EntryKind::manifest},
                           m_lease_holder);
    m_lease_holder.clear();
  }
}

void Compilation::refresh_manifest(Manifest& manifest, const std::vector<uint32_t>& files,
                                   const std::vector<uint32_t>& dirs) {
  // Headers that had to be read (touched, another checkout, or too recent to
  // trust when stored), and watched directories whose names had to be
  // checked (another machine, or changed), get their current stat recorded
  // once they are old enough, so that later hits skip that work.
  if (m_cfg.read_only || (files.empty() && dirs.empty())) {
    return;
  }
  const int64_t trusted = m_inv.start_ns - k_trust_age_ns;
  bool changed = false;
  for (uint32_t i : files) {
    const util::FileStat& st = m_checker.stat(manifest.files()[i].path);
    if (st.is_regular() && st.mtime_ns < trusted && st.ctime_ns < trusted) {
      manifest.refresh_stat(i, st);
      changed = true;
    }
  }
  for (uint32_t i : dirs) {
    // The stat taken before the names were checked (memoized by m_checker).
    const util::FileStat& st = m_checker.stat(manifest.dirs()[i].path);
    if (st.is_directory() && st.mtime_ns < trusted && st.ctime_ns < trusted) {
      manifest.refresh_dir(i, st);
      changed = true;
    }
  }
  if (!changed) {
    return;
  }
  storage::Key key{*m_manifest_key, storage::EntryKind::manifest};
  std::string entry =
      storage::encode_entry(key.kind, manifest.serialize(), k_manifest_compression_level);
  // Stats are per machine: only the local level learns them.
  if (m_local->put(key, entry)) {
    m_log.event("manifest_refreshed", {{"files", static_cast<int64_t>(files.size())},
                                       {"dirs", static_cast<int64_t>(dirs.size())}});
  }
}

}  // namespace kiln::cache
