#include "kiln/storage/chain.hpp"

namespace kiln::storage {

namespace {

// A level's message may name the entry it failed on ("PUT http://host/cache/
// ab/cd/abcd...R returned HTTP 403"). Without the key, the same problem reads
// the same on every compilation, so kiln warns about it once (warn_once)
// rather than once per object of a build.
void drop_key(std::string* problem, const Key& key) {
  for (const std::string& named : {key.relative_path(), key.name()}) {
    for (size_t at = problem->find(named); at != std::string::npos;
         at = problem->find(named, at + 5)) {
      problem->replace(at, named.size(), "<key>");
    }
  }
}

}  // namespace

StorageChain::StorageChain(std::vector<LevelSpec> levels) {
  for (auto& spec : levels) {
    Level level;
    level.name = std::move(spec.name);
    level.read_only = spec.read_only;
    level.storage = spec.storage;
    level.open = std::move(spec.open);
    level.skip = spec.skip;
    m_levels.push_back(std::move(level));
  }
}

StorageChain::~StorageChain() = default;

void StorageChain::count(const Level& level, std::string_view what, int64_t n) {
  std::string name = level.name;
  name += '_';
  name += what;
  m_counters[name] += n;
}

Storage* StorageChain::level(size_t i) {
  Level& level = m_levels.at(i);
  if (level.skip) {
    level.skip = false;
    level.disabled = true;
    count(level, "skipped");
  }
  if (level.disabled) {
    return nullptr;
  }
  if (!level.storage && level.open) {
    auto opened = level.open();
    level.open = nullptr;
    if (!opened) {
      level.disabled = true;
      count(level, "read_error");
      m_problems.push_back(level.name + ": " + opened.error());
      return nullptr;
    }
    level.owned = std::move(*opened);
    level.storage = level.owned.get();
  }
  return level.storage;
}

void StorageChain::failed(Level& level, Failure f, std::string_view op) {
  bool read = op == "read";
  count(level, f == Failure::timeout ? (read ? "read_timeout" : "write_timeout")
                                     : (read ? "read_error" : "write_error"));
  level.disabled = true;  // skipped for the rest of this compilation
  if (f == Failure::timeout) {
    m_timed_out.push_back(level.name);
  }
  std::string detail = level.storage ? level.storage->last_error() : std::string();
  if (detail.empty()) {
    detail = std::string(to_string(f)) + " on " + std::string(op);
  }
  m_problems.push_back(level.name + ": " + detail);
}

std::optional<std::string> StorageChain::get(const Key& key, const Validator& valid) {
  m_last_hit.reset();
  for (size_t i = 0; i < m_levels.size(); ++i) {
    Storage* s = level(i);
    if (!s) {
      continue;
    }
    Level& lv = m_levels[i];
    auto value = s->get(key);
    if (!value) {
      if (value.error() == Failure::not_found) {
        count(lv, "miss");
      } else {
        failed(lv, value.error(), "read");
        drop_key(&m_problems.back(), key);
      }
      continue;
    }
    if (!valid(*value)) {
      count(lv, "corrupt");
      if (!lv.read_only) {
        (void)s->remove(key);
      }
      continue;
    }
    count(lv, "hit");
    count(lv, "read_bytes", static_cast<int64_t>(value->size()));
    m_last_hit = LastHit{key, i, {}};
    // Backfill the faster levels that missed.
    for (size_t j = 0; j < i; ++j) {
      Level& faster = m_levels[j];
      if (faster.read_only || faster.disabled || !faster.storage) {
        continue;
      }
      if (auto r = faster.storage->put(key, *value)) {
        count(faster, "backfill");
        m_last_hit->backfilled.push_back(j);
      } else {
        failed(faster, r.error(), "write");
        drop_key(&m_problems.back(), key);
      }
    }
    return std::move(*value);
  }
  return std::nullopt;
}

void StorageChain::discard(const Key& key) {
  if (!m_last_hit || m_last_hit->key.digest != key.digest || m_last_hit->key.kind != key.kind) {
    return;
  }
  LastHit hit = std::move(*m_last_hit);
  m_last_hit.reset();
  Level& source = m_levels[hit.level];
  // It was counted as a hit when it passed the validator.
  auto it = m_counters.find(source.name + "_hit");
  if (it != m_counters.end() && --it->second == 0) {
    m_counters.erase(it);
  }
  count(source, "corrupt");
  if (!source.read_only && !source.disabled && source.storage) {
    (void)source.storage->remove(key);
  }
  for (size_t j : hit.backfilled) {
    Level& faster = m_levels[j];
    if (!faster.disabled && faster.storage) {
      (void)faster.storage->remove(key);
    }
  }
}

int StorageChain::put(const Key& key, std::string_view value) {
  int written = 0;
  for (size_t i = 0; i < m_levels.size(); ++i) {
    Level& lv = m_levels[i];
    if (lv.read_only) {
      continue;
    }
    Storage* s = level(i);
    if (!s) {
      continue;
    }
    if (auto r = s->put(key, value)) {
      ++written;
      count(lv, "write");
      count(lv, "written_bytes", static_cast<int64_t>(value.size()));
    } else {
      failed(lv, r.error(), "write");
      drop_key(&m_problems.back(), key);
    }
  }
  return written;
}

}  // namespace kiln::storage
