// Stage: from_cache, the look-ups of manifests and results.
#include "kiln/cache/compilation.hpp"
#include "kiln/storage/entry.hpp"

namespace kiln::cache {

std::optional<std::string> Compilation::get_entry(const storage::Key& key) {
  auto bytes = m_local->get(key);
  if (!bytes) {
    if (bytes.error() != storage::Failure::not_found) {
      m_stats.add(Counter::error_storage_read);
      m_log.event("storage_error", {{"op", "get"},
                                    {"level", m_local->name()},
                                    {"failure", storage::to_string(bytes.error())}});
    }
    return std::nullopt;
  }
  auto payload = storage::decode_entry(*bytes, key.kind);
  if (!payload) {
    // Never served: removed so that the next compilation stores a good one.
    m_stats.add(Counter::corrupt_entry);
    m_log.event("corrupt_entry",
                {{"key", key.name()}, {"error", storage::to_string(payload.error())}});
    (void)m_local->remove(key);
    return std::nullopt;
  }
  return std::move(*payload);
}

std::optional<Manifest> Compilation::load_manifest() {
  storage::Key key{*m_manifest_key, storage::EntryKind::manifest};
  auto payload = get_entry(key);
  if (!payload) {
    return std::nullopt;
  }
  auto manifest = Manifest::parse(*payload);
  if (!manifest) {
    m_stats.add(Counter::corrupt_entry);
    (void)m_local->remove(key);
  }
  return manifest;
}

std::optional<Result> Compilation::load_result(const util::Digest& result_key) {
  storage::Key key{result_key, storage::EntryKind::result};
  auto payload = get_entry(key);
  if (!payload) {
    return std::nullopt;
  }
  auto result = Result::parse(*payload);
  if (!result || !result->find(FileType::object) ||
      (m_args.generating_dependencies && !result->find(FileType::depfile))) {
    m_stats.add(Counter::corrupt_entry);
    (void)m_local->remove(key);
    return std::nullopt;
  }
  return result;
}

std::optional<std::pair<Result, util::Digest>> Compilation::from_cache_direct() {
  auto manifest = load_manifest();
  if (!manifest) {
    return std::nullopt;
  }
  int64_t rehashed = 0;
  auto result_key = manifest->lookup(m_checker, today(), &rehashed);
  m_log.event("manifest_lookup", {{"entries", static_cast<int64_t>(manifest->entries().size())},
                                  {"rehashed", rehashed},
                                  {"found", result_key ? "yes" : "no"}});
  if (!result_key) {
    return std::nullopt;
  }
  auto result = load_result(*result_key);
  if (!result) {
    return std::nullopt;
  }
  return std::pair{std::move(*result), *result_key};
}

}  // namespace kiln::cache
