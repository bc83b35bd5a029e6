#include "m2m/identifiers.h"

namespace m2m {

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out += '`';
    out += c;
  }
  out += '`';
  return out;
}

std::string QuoteString(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '\'';
  for (char c : text) {
    switch (c) {
      case '\0': out += "\\0"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\x1a': out += "\\Z"; break;
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      case '"': out += "\\\""; break;
      default: out += c;
    }
  }
  out += '\'';
  return out;
}

std::string HexLiteral(std::string_view bytes) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out = "X'";
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  out += '\'';
  return out;
}

std::string Fnv1a32Hex(std::string_view bytes) {
  uint32_t h = 2166136261u;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 16777619u;
  }
  char buf[9];
  snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

std::string SanitizeComponent(std::string_view component, bool* changed) {
  std::string out;
  *changed = component.empty();
  for (size_t i = 0; i < component.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(component[i]);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
      out += static_cast<char>(c);
      continue;
    }
    *changed = true;
    out += '_';
    // One '_' per code point: skip the continuation bytes of a UTF-8 sequence.
    while (i + 1 < component.size() && (static_cast<unsigned char>(component[i + 1]) & 0xC0) == 0x80) ++i;
  }
  return out;
}

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string MakeIdentifier(std::string_view prefix, const std::vector<std::string>& path,
                           std::string_view separator, std::string_view hash_source,
                           const std::function<bool(std::string_view)>& taken) {
  std::string base(prefix);
  bool lossy = false;
  for (const std::string& component : path) {
    bool changed = false;
    std::string clean = SanitizeComponent(component, &changed);
    lossy |= changed;
    if (!base.empty()) base += separator;
    base += clean;
  }
  if (!lossy && base.size() <= kMaxIdentifierLength && !taken(base)) return base;
  const std::string hash = Fnv1a32Hex(hash_source);
  for (int n = 1;; ++n) {
    std::string suffix = (n == 1 ? "" : "_" + std::to_string(n)) + "_" + hash;
    std::string candidate = base.substr(0, kMaxIdentifierLength - suffix.size()) + suffix;
    if (!taken(candidate)) return candidate;
  }
}

}  // namespace m2m
