#include "namespace_filter.h"

#include <gtest/gtest.h>

namespace m2m::capture {
namespace {

TEST(NamespaceFilterTest, EverythingWithoutLists) {
  auto f = NamespaceFilter::Make({}, {});
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Accepts("shop", "orders"));
}

TEST(NamespaceFilterTest, IncludeNamesAndRegexesExcludeWins) {
  auto f = NamespaceFilter::Make({"shop.orders", "/^shop\\.cust/"}, {"/_tmp$/", "shop.customers_old"});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->Accepts("shop", "orders"));
  EXPECT_TRUE(f->Accepts("shop", "customers"));
  EXPECT_FALSE(f->Accepts("shop", "customers_old"));
  EXPECT_FALSE(f->Accepts("shop", "customers_tmp"));
  EXPECT_FALSE(f->Accepts("shop", "products"));
  EXPECT_FALSE(f->Accepts("shopx", "orders"));  // exact names are not prefixes
}

TEST(NamespaceFilterTest, BadPatternsNameThemselves) {
  auto bad_regex = NamespaceFilter::Make({"/([/"}, {});
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_NE(bad_regex.status().message().find("/([/"), std::string::npos);
  auto no_db = NamespaceFilter::Make({}, {"orders"});
  ASSERT_FALSE(no_db.ok());
  EXPECT_NE(no_db.status().message().find("db.collection"), std::string::npos);
}

}  // namespace
}  // namespace m2m::capture
