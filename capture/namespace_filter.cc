#include "namespace_filter.h"

namespace m2m::capture {

Result<NamespaceFilter::Pattern> NamespaceFilter::Parse(const std::string& text) {
  if (text.size() >= 2 && text.front() == '/' && text.back() == '/') {
    try {
      return Pattern{"", std::regex(text.substr(1, text.size() - 2), std::regex::ECMAScript)};
    } catch (const std::regex_error& e) {
      return Status::Invalid("collection pattern " + text + " is not a valid regular expression: " + e.what());
    }
  }
  if (text.find('.') == std::string::npos) {
    return Status::Invalid("collection pattern " + text + " must be db.collection or /regex/");
  }
  return Pattern{text, std::nullopt};
}

Result<NamespaceFilter> NamespaceFilter::Make(const std::vector<std::string>& include,
                                              const std::vector<std::string>& exclude) {
  NamespaceFilter f;
  for (const auto& p : include) {
    M2M_ASSIGN_OR_RETURN(Pattern parsed, Parse(p));
    f.include_.push_back(std::move(parsed));
  }
  for (const auto& p : exclude) {
    M2M_ASSIGN_OR_RETURN(Pattern parsed, Parse(p));
    f.exclude_.push_back(std::move(parsed));
  }
  return f;
}

bool NamespaceFilter::Accepts(const std::string& db, const std::string& collection) const {
  std::string ns = db + "." + collection;
  for (const auto& p : exclude_) {
    if (p.Matches(ns)) return false;
  }
  if (include_.empty()) return true;
  for (const auto& p : include_) {
    if (p.Matches(ns)) return true;
  }
  return false;
}

}  // namespace m2m::capture
