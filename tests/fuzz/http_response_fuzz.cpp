// libFuzzer target for net::ResponseParser, the parser of every byte an HTTP
// server sends the socket transport. The first input byte picks the request
// kind (HEAD or not) and the size of the pieces the rest is fed in; the
// limits are small so that the fuzzer explores them rather than memory.
// Built with -DKILN_FUZZ=ON and clang (tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kiln/net/response_parser.hpp"

namespace {

void check(bool condition) {
  if (!condition) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  bool head_request = (data[0] & 0x80) != 0;
  size_t piece = (data[0] & 0x7f) + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  kiln::net::HttpLimits limits;
  limits.max_body_bytes = 64 * 1024;
  limits.max_header_line = 256;
  limits.max_headers = 32;
  kiln::net::ResponseParser parser(head_request, limits);

  size_t used = 0;
  bool failed = false;
  while (used < input.size() && !parser.complete()) {
    std::string_view next = input.substr(used, piece);
    auto n = parser.feed(next);
    if (!n) {
      failed = true;
      break;
    }
    check(*n <= next.size());
    check(*n == next.size() || parser.complete());
    used += *n;
  }
  if (!failed && !parser.complete()) {
    failed = !parser.finish();
  }
  if (!failed) {
    check(parser.complete());
    const auto& response = parser.response();
    check(response.status >= 100 && response.status <= 999);
    check(response.body.size() <= limits.max_body_bytes);
    check(response.headers.size() <= static_cast<size_t>(limits.max_headers));
    check(!head_request || response.body.empty());
  }
  return 0;
}
