#include "kiln/util/hex.hpp"

#include <sys/random.h>

#include <cerrno>

namespace kiln::util {

namespace {

std::string encode(std::string_view bytes, const char* digits) {
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto u = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = digits[u >> 4];
    out[2 * i + 1] = digits[u & 0xf];
  }
  return out;
}

}  // namespace

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n > 0) {
      got += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      break;  // not on any kernel kiln runs on (3.17+)
    }
  }
  return to_hex(raw);
}

std::string to_hex(std::string_view bytes) {
  return encode(bytes, "0123456789abcdef");
}

std::string to_hex_upper(std::string_view bytes) {
  return encode(bytes, "0123456789ABCDEF");
}

std::optional<std::string> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int high = hex_value(hex[2 * i]);
    int low = hex_value(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return std::nullopt;
    }
    out[i] = static_cast<char>(high << 4 | low);
  }
  return out;
}

}  // namespace kiln::util
