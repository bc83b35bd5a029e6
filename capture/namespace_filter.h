// Which collections a database- or deployment-level capture publishes: include and exclude lists of
// "db.collection" names or /regular expressions/ matched against "db.collection".
//
// With no include list everything is included; an exclude match always wins.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "m2m/status.h"

namespace m2m::capture {

class NamespaceFilter {
 public:
  // Patterns: "shop.orders" (exact) or "/^shop\.tmp_/" (regex). A bad regex is an error naming it.
  static Result<NamespaceFilter> Make(const std::vector<std::string>& include,
                                      const std::vector<std::string>& exclude);
  NamespaceFilter() = default;

  bool Accepts(const std::string& db, const std::string& collection) const;

 private:
  struct Pattern {
    std::string exact;
    std::optional<std::regex> regex;
    bool Matches(const std::string& ns) const { return regex ? std::regex_search(ns, *regex) : ns == exact; }
  };
  static Result<Pattern> Parse(const std::string& text);
  std::vector<Pattern> include_, exclude_;
};

}  // namespace m2m::capture
