#include "kiln/storage/chain.hpp"

namespace kiln::storage {

std::string_view to_string(Operation op) {
  return op == Operation::read ? "read" : "write";
}

std::string Problem::text() const {
  return level + ": " + error.text("<key>");
}

std::string_view to_string(LevelEvent e) {
  switch (e) {
    case LevelEvent::hit:
      return "hit";
    case LevelEvent::miss:
      return "miss";
    case LevelEvent::read_error:
      return "read_error";
    case LevelEvent::read_timeout:
      return "read_timeout";
    case LevelEvent::write:
      return "write";
    case LevelEvent::write_error:
      return "write_error";
    case LevelEvent::write_timeout:
      return "write_timeout";
    case LevelEvent::corrupt:
      return "corrupt";
    case LevelEvent::read_bytes:
      return "read_bytes";
    case LevelEvent::written_bytes:
      return "written_bytes";
    case LevelEvent::backfill:
      return "backfill";
    case LevelEvent::skipped:
      return "skipped";
  }
  return "unknown";
}

bool is_read_failure(LevelEvent e) {
  return e == LevelEvent::read_error || e == LevelEvent::read_timeout;
}

bool is_write_failure(LevelEvent e) {
  return e == LevelEvent::write_error || e == LevelEvent::write_timeout;
}

std::string LevelCounter::name() const {
  std::string out = level;
  out += '_';
  out += to_string(event);
  return out;
}

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

void StorageChain::count(const Level& level, LevelEvent event, int64_t n) {
  m_counters[LevelCounter{level.name, event}] += n;
}

int64_t StorageChain::count_of(std::string_view level, LevelEvent event) const {
  auto it = m_counters.find(LevelCounter{std::string(level), event});
  return it == m_counters.end() ? 0 : it->second;
}

std::vector<std::string> StorageChain::problems() const {
  std::vector<std::string> out;
  out.reserve(m_failures.size());
  for (const Problem& p : m_failures) {
    out.push_back(p.text());
  }
  return out;
}

Storage* StorageChain::level(size_t i) {
  Level& level = m_levels.at(i);
  if (level.skip) {
    level.skip = false;
    level.disabled = true;
    count(level, LevelEvent::skipped);
  }
  if (level.disabled) {
    return nullptr;
  }
  if (!level.storage && level.open) {
    auto opened = level.open();
    level.open = nullptr;
    if (!opened) {
      level.disabled = true;
      count(level, LevelEvent::read_error);
      m_failures.push_back(
          Problem{level.name, Operation::read, Error::plain(Failure::error, opened.error())});
      return nullptr;
    }
    level.owned = std::move(*opened);
    level.storage = level.owned.get();
  }
  return level.storage;
}

Storage* StorageChain::lease_storage() {
  if (!m_lease_chosen) {
    m_lease_chosen = true;
    for (size_t i = m_levels.size(); i-- > 0;) {
      if (m_levels[i].read_only) {
        continue;
      }
      Storage* s = level(i);
      if (s && s->supports_leases()) {
        m_lease_level = i;
        break;
      }
    }
  }
  if (!m_lease_level || m_levels[*m_lease_level].disabled) {
    return nullptr;
  }
  return m_levels[*m_lease_level].storage;
}

StorageChain::Lease StorageChain::acquire_lease(const Key& key, std::string_view holder,
                                                std::chrono::milliseconds ttl) {
  Storage* s = lease_storage();
  if (!s) {
    return Lease::unavailable;
  }
  auto taken = s->acquire_lease(key, holder, ttl);
  if (!taken) {
    m_lease_level.reset();  // no more leasing in this compilation
    return Lease::unavailable;
  }
  return *taken ? Lease::taken : Lease::held;
}

std::optional<bool> StorageChain::lease_held(const Key& key) {
  Storage* s = lease_storage();
  if (!s) {
    return std::nullopt;
  }
  auto held = s->lease_held(key);
  if (!held) {
    m_lease_level.reset();
    return std::nullopt;
  }
  return *held;
}

void StorageChain::release_lease(const Key& key, std::string_view holder) {
  if (Storage* s = lease_storage()) {
    (void)s->release_lease(key, holder);
  }
}

std::string StorageChain::lease_level_name() const {
  return m_lease_level ? m_levels[*m_lease_level].name : std::string();
}

void StorageChain::failed(Level& level, Failure f, Operation op) {
  const bool read = op == Operation::read;
  if (f == Failure::timeout) {
    count(level, read ? LevelEvent::read_timeout : LevelEvent::write_timeout);
    m_timed_out.push_back(level.name);
  } else {
    count(level, read ? LevelEvent::read_error : LevelEvent::write_error);
  }
  level.disabled = true;  // skipped for the rest of this compilation
  Error error = level.storage ? level.storage->last_problem() : Error{};
  if (error.empty()) {
    error = Error::plain(f, std::string(to_string(f)) + " on " + std::string(to_string(op)));
  }
  error.failure = f;
  m_failures.push_back(Problem{level.name, op, std::move(error)});
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
        count(lv, LevelEvent::miss);
      } else {
        failed(lv, value.error(), Operation::read);
      }
      continue;
    }
    if (!valid(*value)) {
      count(lv, LevelEvent::corrupt);
      if (!lv.read_only) {
        (void)s->remove(key);
      }
      continue;
    }
    count(lv, LevelEvent::hit);
    count(lv, LevelEvent::read_bytes, static_cast<int64_t>(value->size()));
    m_last_hit = LastHit{key, i, {}};
    // Backfill the faster levels that missed.
    for (size_t j = 0; j < i; ++j) {
      Level& faster = m_levels[j];
      if (faster.read_only || faster.disabled || !faster.storage) {
        continue;
      }
      if (auto r = faster.storage->put(key, *value)) {
        count(faster, LevelEvent::backfill);
        m_last_hit->backfilled.push_back(j);
      } else {
        failed(faster, r.error(), Operation::write);
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
  auto it = m_counters.find(LevelCounter{source.name, LevelEvent::hit});
  if (it != m_counters.end() && --it->second == 0) {
    m_counters.erase(it);
  }
  count(source, LevelEvent::corrupt);
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
      count(lv, LevelEvent::write);
      count(lv, LevelEvent::written_bytes, static_cast<int64_t>(value.size()));
    } else {
      failed(lv, r.error(), Operation::write);
    }
  }
  return written;
}

}  // namespace kiln::storage
