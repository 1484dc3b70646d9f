// The admin API's authentication: credentials file rules, bearer tokens, expiry, the cap.
#include <gtest/gtest.h>

#include "kbs/admin.h"

namespace tdxvirt::kbs {
namespace {

AdminCredentials Creds() { return {"admin", "0123456789abcdef-long"}; }

TEST(AdminCredentialsTest, RefusesShortPasswordUnknownFieldsAndEmptyUser) {
  EXPECT_TRUE(ParseAdminCredentials(R"({"username":"a","password":"0123456789abcdef"})").ok());
  EXPECT_EQ(ParseAdminCredentials(R"({"username":"a","password":"short"})").error(),
            "admin credentials: password is shorter than 16 characters; use a long random one "
            "(openssl rand -base64 24)");
  EXPECT_EQ(ParseAdminCredentials(R"({"username":"a","password":"0123456789abcdef","role":1})").error(),
            "admin credentials: unknown field \"role\" (allowed: username, password)");
  EXPECT_EQ(ParseAdminCredentials(R"({"username":"","password":"0123456789abcdef"})").error(),
            "admin credentials: username is empty; set a user name");
  EXPECT_EQ(ParseAdminCredentials(R"({"username":1,"password":"0123456789abcdef"})").error(),
            "admin credentials: username must be a string");
  EXPECT_FALSE(ParseAdminCredentials("[]").ok());
}

TEST(AdminAuthTest, IssuesTokensOnlyForTheRightPairAndTheyExpire) {
  AdminAuth auth(Creds(), 300);
  EXPECT_FALSE(auth.IssueToken("admin", "wrong-password-xxxxxxxx", 1000).ok());
  EXPECT_FALSE(auth.IssueToken("root", "0123456789abcdef-long", 1000).ok());
  auto t = auth.IssueToken("admin", "0123456789abcdef-long", 1000);
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_TRUE(auth.Check("Bearer " + *t, 1000));
  EXPECT_TRUE(auth.Check("Bearer " + *t, 1299));
  EXPECT_FALSE(auth.Check(*t, 1000));              // no scheme
  EXPECT_FALSE(auth.Check("Bearer " + *t + "x", 1000));
  EXPECT_FALSE(auth.Check("Bearer ", 1000));
  EXPECT_FALSE(auth.Check("Bearer " + *t, 1300));  // expired
  EXPECT_FALSE(auth.Check("Bearer " + *t, 1000));  // and forgotten
}

TEST(AdminAuthTest, CapDropsTheOldestToken) {
  AdminAuth auth(Creds(), 300, 2);
  auto a = auth.IssueToken("admin", "0123456789abcdef-long", 1000);
  auto b = auth.IssueToken("admin", "0123456789abcdef-long", 1001);
  auto c = auth.IssueToken("admin", "0123456789abcdef-long", 1002);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(*a, *b);
  EXPECT_FALSE(auth.Check("Bearer " + *a, 1003));
  EXPECT_TRUE(auth.Check("Bearer " + *b, 1003));
  EXPECT_TRUE(auth.Check("Bearer " + *c, 1003));
}

}  // namespace
}  // namespace tdxvirt::kbs
