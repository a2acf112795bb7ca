#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kiln::util {

// Little-endian binary writer for kiln's entry payloads.
class Writer {
 public:
  void u8(uint8_t v) { m_out.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void i64(int64_t v) { raw(&v, sizeof v); }
  void bytes(std::string_view s) {
    u64(s.size());
    m_out.append(s);
  }
  void raw(const void* p, size_t n) { m_out.append(static_cast<const char*>(p), n); }
  std::string& str() { return m_out; }

 private:
  std::string m_out;
};

// Bounds-checked reader: after any failed read ok() is false and every later
// read returns zero values, so parsers check once at the end.
class Reader {
 public:
  explicit Reader(std::string_view in) : m_in(in) {}
  uint8_t u8() {
    uint8_t v = 0;
    raw(&v, 1);
    return v;
  }
  uint32_t u32() {
    uint32_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  uint64_t u64() {
    uint64_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  int64_t i64() {
    int64_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
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
  std::string_view m_in;
  bool m_ok = true;
};

}  // namespace kiln::util
