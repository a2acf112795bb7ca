#include "kiln/cache/depfile.hpp"

#include <unordered_set>

namespace kiln::cache {

namespace {

// Splits depfile text into tokens; a token ending in an unescaped ':' is a
// target marker. Rule boundaries are unescaped newlines, reported as "\n".
std::vector<std::string> tokenize(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  auto flush = [&] {
    if (have) {
      out.push_back(std::move(cur));
      cur.clear();
      have = false;
    }
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      char n = text[i + 1];
      if (n == '\n') {
        ++i;
        flush();
        continue;
      }
      if (n == '\r' && i + 2 < text.size() && text[i + 2] == '\n') {
        i += 2;
        flush();
        continue;
      }
      if (n == ' ' || n == '\t' || n == '#') {
        cur += n;
        have = true;
        ++i;
        continue;
      }
      // Backslashes before an escaped blank are doubled by gcc ("a\\\ b"
      // names "a\ b"); elsewhere a backslash is part of the name.
      size_t run = 0;
      while (i + run < text.size() && text[i + run] == '\\') {
        ++run;
      }
      if (run % 2 == 0 && i + run < text.size() &&
          (text[i + run] == ' ' || text[i + run] == '\t')) {
        // 2k backslashes then a blank: k backslashes, and the blank separates.
        cur.append(run / 2, '\\');
        have = true;
        i += run - 1;
        continue;
      }
      if (run % 2 == 1 && run > 1 && i + run < text.size() &&
          (text[i + run] == ' ' || text[i + run] == '\t')) {
        // 2k+1 backslashes then a blank: k backslashes and an escaped blank.
        cur.append(run / 2, '\\');
        cur += text[i + run];
        have = true;
        i += run;
        continue;
      }
      cur += c;
      have = true;
      continue;
    }
    if (c == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      cur += '$';
      have = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      flush();
      continue;
    }
    if (c == '\n') {
      flush();
      out.emplace_back("\n");
      continue;
    }
    cur += c;
    have = true;
  }
  flush();
  return out;
}

}  // namespace

Depfile parse_depfile(std::string_view text) {
  Depfile d;
  std::unordered_set<std::string> seen;
  bool first_rule = true;
  bool in_targets = true;
  for (auto& tok : tokenize(text)) {
    if (tok == "\n") {
      if (!in_targets) {
        first_rule = false;
      }
      in_targets = true;
      continue;
    }
    if (in_targets) {
      bool ends = !tok.empty() && tok.back() == ':';
      std::string name = ends ? tok.substr(0, tok.size() - 1) : tok;
      if (!name.empty() && first_rule) {
        d.targets.push_back(name);
      }
      if (ends) {
        in_targets = false;
      }
      continue;
    }
    if (seen.insert(tok).second) {
      d.prerequisites.push_back(std::move(tok));
    }
  }
  return d;
}

std::string escape_target(std::string_view path) {
  std::string out;
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == ' ' || c == '\t') {
      // Backslashes before a space are doubled, then the space escaped.
      for (size_t j = i; j > 0 && path[j - 1] == '\\'; --j) {
        out += '\\';
      }
      out += '\\';
    } else if (c == '$') {
      out += '$';
    } else if (c == '#') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

std::vector<std::string> includes_from_cpp_output(std::string_view text) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) {
      eol = text.size();
    }
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.size() < 4 || line[0] != '#') {
      continue;
    }
    // "# 12 \"file\" 1 3" or "#line 12 \"file\""; not "#pragma ... \"x\""
    size_t q = 1;
    if (line.substr(1).starts_with("line")) {
      q = 5;
    }
    size_t digits_start = line.find_first_not_of(' ', q);
    if (digits_start == std::string_view::npos || digits_start == q || line[digits_start] < '0' ||
        line[digits_start] > '9') {
      continue;
    }
    q = line.find_first_not_of("0123456789", digits_start);
    if (q == std::string_view::npos || line.substr(q).size() < 2 || line[q] != ' ' ||
        line[q + 1] != '"') {
      continue;
    }
    ++q;
    std::string name;
    size_t i = q + 1;
    for (; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size()) {
        ++i;
      }
      name += line[i];
    }
    if (name.empty() || name.front() == '<') {
      continue;
    }
    if (seen.insert(name).second) {
      out.push_back(std::move(name));
    }
  }
  return out;
}

}  // namespace kiln::cache
