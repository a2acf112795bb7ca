#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kiln::util {

// Payload integers are little-endian whatever the host's byte order
// (docs/storage-layout.md), so an entry written on one machine reads the same
// on another: these are built from bytes with shifts, never copied in host
// order.

// The `size`-byte (at most 8) little-endian integer at p.
inline uint64_t load_le(const char* p, size_t size) {
  uint64_t v = 0;
  for (size_t i = size; i-- > 0;) {
    v = v << 8 | static_cast<uint8_t>(p[i]);
  }
  return v;
}

inline uint32_t load_le32(const char* p) {
  return static_cast<uint32_t>(load_le(p, 4));
}

inline uint64_t load_le64(const char* p) {
  return load_le(p, 8);
}

// Appends the `size` (at most 8) low bytes of v to out, least significant first.
inline void append_le(std::string& out, uint64_t v, size_t size) {
  for (size_t i = 0; i < size; ++i) {
    out.push_back(static_cast<char>(static_cast<uint8_t>(v >> (8 * i))));
  }
}

// Binary writer for kiln's entry payloads; integers little-endian.
class Writer {
 public:
  void u8(uint8_t v) { m_out.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { append_le(m_out, v, 4); }
  void u64(uint64_t v) { append_le(m_out, v, 8); }
  void i64(int64_t v) { append_le(m_out, static_cast<uint64_t>(v), 8); }
  void bytes(std::string_view s) {
    u64(s.size());
    m_out.append(s);
  }
  // Bytes as they are (digests).
  void raw(const void* p, size_t n) { m_out.append(static_cast<const char*>(p), n); }
  std::string& str() { return m_out; }

 private:
  std::string m_out;
};

// Bounds-checked reader of what Writer wrote: after any failed read ok() is
// false and every later read returns zero values, so parsers check once at
// the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : m_in(in) {}
  uint8_t u8() { return static_cast<uint8_t>(integer(1)); }
  uint32_t u32() { return static_cast<uint32_t>(integer(4)); }
  uint64_t u64() { return integer(8); }
  int64_t i64() { return static_cast<int64_t>(integer(8)); }
  std::string bytes() {
    uint64_t n = u64();
    if (!m_ok || n > m_in.size()) {
      m_ok = false;
      return {};
    }
    std::string s(m_in.substr(0, n));
    m_in.remove_prefix(n);
    return s;
  }
  // Bytes as they are (digests).
  void raw(void* p, size_t n) {
    if (!m_ok || n > m_in.size()) {
      m_ok = false;
      std::memset(p, 0, n);
      return;
    }
    std::memcpy(p, m_in.data(), n);
    m_in.remove_prefix(n);
  }
  bool ok() const { return m_ok; }
  bool at_end() const { return m_in.empty(); }
  size_t remaining() const { return m_in.size(); }

 private:
  // The next `size` bytes as a little-endian integer; 0 past the end.
  uint64_t integer(size_t size) {
    if (!m_ok || size > m_in.size()) {
      m_ok = false;
      return 0;
    }
    uint64_t v = load_le(m_in.data(), size);
    m_in.remove_prefix(size);
    return v;
  }

  std::string_view m_in;
  bool m_ok = true;
};

}  // namespace kiln::util
