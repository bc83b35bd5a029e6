#include "m2m/mongo_client.h"

#include <gtest/gtest.h>

namespace m2m {
namespace {

TEST(RedactedUriTest, HidesThePasswordAndSecretOptionsKeepsTheRest) {
  EXPECT_EQ(RedactedUri("mongodb://cdc:s3cr:et@db1:27017,db2:27017/shop?replicaSet=rs0&tls=true"),
            "mongodb://cdc:***@db1:27017,db2:27017/shop?replicaSet=rs0&tls=true");
  EXPECT_EQ(RedactedUri("mongodb+srv://u:p%40ss@cluster0.example.net/?retryWrites=true"),
            "mongodb+srv://u:***@cluster0.example.net/?retryWrites=true");
  EXPECT_EQ(RedactedUri("mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=k3y&authMechanism=MONGODB-AWS&"
                        "authMechanismProperties=AWS_SESSION_TOKEN:t0ken"),
            "mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=***&authMechanism=MONGODB-AWS&"
            "authMechanismProperties=***");
  EXPECT_EQ(RedactedUri("mongodb://u:p@db1"), "mongodb://u:***@db1");
  EXPECT_EQ(RedactedUri("mongodb://u:p@db1?appName=a@b"), "mongodb://u:***@db1?appName=a@b");
}

TEST(RedactedUriTest, LeavesAUriWithoutSecretsAlone) {
  for (const char* uri : {"mongodb://127.0.0.1:27017", "mongodb://user@db1:27017/?authMechanism=MONGODB-X509",
                          "mongodb://db1/shop?appName=a@b&w=majority", "not a uri"}) {
    EXPECT_EQ(RedactedUri(uri), uri);
  }
}

}  // namespace
}  // namespace m2m
