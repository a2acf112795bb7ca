#include "kiln/net/http_client.hpp"

#include <algorithm>

#include "kiln/util/string.hpp"

namespace kiln::net {

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) {
      return v;
    }
  }
  return std::nullopt;
}

expected<HttpResponse, HttpError> HttpClient::get(const std::string& url,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"GET", url, std::move(headers), {}, 0, {}});
}

expected<HttpResponse, HttpError> HttpClient::head(const std::string& url,
                                                   std::vector<std::string> headers) {
  return perform(HttpRequest{"HEAD", url, std::move(headers), {}, 0, {}});
}

expected<HttpResponse, HttpError> HttpClient::put(const std::string& url, std::string_view body,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"PUT", url, std::move(headers), body, 0, {}});
}

expected<HttpResponse, HttpError> HttpClient::post(const std::string& url, std::string_view body,
                                                   std::vector<std::string> headers) {
  return perform(HttpRequest{"POST", url, std::move(headers), body, 0, {}});
}

expected<HttpResponse, HttpError> HttpClient::del(const std::string& url,
                                                  std::vector<std::string> headers) {
  return perform(HttpRequest{"DELETE", url, std::move(headers), {}, 0, {}});
}

bool sends_body(const HttpRequest& request) {
  return request.method == "PUT" || request.method == "POST" || !request.body.empty();
}

bool has_header(const std::vector<std::string>& headers, std::string_view name) {
  return std::any_of(headers.begin(), headers.end(), [&](const std::string& line) {
    auto colon = line.find(':');
    return colon != std::string::npos &&
           util::lowercase(util::trim(std::string_view(line).substr(0, colon))) == name;
  });
}

std::vector<std::string> header_lines_to_send(const HttpRequest& request) {
  std::vector<std::string> lines = request.headers;
  if (sends_body(request) && !has_header(lines, "content-type")) {
    lines.push_back("Content-Type: application/octet-stream");
  }
  return lines;
}

}  // namespace kiln::net
