#include "core/email_address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "email/mailer.hpp"
#include "identity/user_store.hpp"

namespace atrium {
namespace {

// Every place that accepts an address (users, members, tenant owners, billing accounts, Reply-To, email.from) uses
// this one check; UserStore::valid_email and email::valid_address are the same function.
bool all_agree(const std::string& address) {
  const bool core = valid_email_address(address);
  EXPECT_EQ(identity::UserStore::valid_email(address), core) << address;
  EXPECT_EQ(email::valid_address(address), core) << address;
  return core;
}

TEST(EmailAddressCheck, AcceptsAddrSpecsInPractice) {
  const std::string local64(64, 'l');
  const std::string label63(63, 'd');
  // 254 characters in all: 64 + '@' + 189 (three 61-character labels and ".com").
  const std::string longest =
      local64 + "@" + std::string(61, 'a') + "." + std::string(61, 'b') + "." + std::string(61, 'c') + ".com";
  ASSERT_EQ(longest.size(), 254u);
  for (const std::string& good : std::vector<std::string>{
           "a@b.co",
           "ada@example.com",
           "Ada.Lovelace@Example.COM",
           "a.b+tag@sub.example.co.uk",
           "o'neil@example.com",
           "1234567890@123.example",
           "a_b-c@x-y.example",
           "!#$%&'*+/=?^_`{|}~-@example.com",
           "x@xn--bcher-kva.example",
           "a@" + label63 + ".example",
           local64 + "@example.com",
           longest,
       }) {
    EXPECT_TRUE(all_agree(good)) << good;
  }
}

TEST(EmailAddressCheck, RefusesEverythingElse) {
  const std::string too_long = std::string(64, 'l') + "@" + std::string(61, 'a') + "." + std::string(61, 'b') + "." +
                               std::string(62, 'c') + ".com";  // 255 characters, every part within its own limit
  ASSERT_EQ(too_long.size(), 255u);
  for (const std::string& bad : std::vector<std::string>{
           // display names, angle brackets, comments
           "<a@b.com>",
           "\"A\" <a@b.com>",
           "A <a@b.com>",
           "a@b.com>",
           "<a@b.com",
           "a@b.com (comment)",
           "(comment)a@b.com",
           // spaces and control characters
           "a b@c.com",
           " a@b.com",
           "a@b.com ",
           "a@b .com",
           "a\t@b.com",
           "a@b.com\r\nBcc: x@y.example",
           "a@b.com\n",
           std::string("a@b.com\0zz", 10),
           std::string("a\0@b.com", 8),
           "a\x7f@b.com",
           // local part
           "a..b@c.com",
           ".a@b.com",
           "a.@b.com",
           "@b.com",
           "\"a b\"@c.com",  // quoted strings are not accepted
           "a\"b@c.com",
           "a,b@c.com",
           "a;b@c.com",
           "a:b@c.com",
           "a\\b@c.com",
           "a[b]@c.com",
           "\xc3\xa4@b.com",  // non-ASCII (no SMTPUTF8)
           std::string(65, 'l') + "@example.com",
           // '@'
           "ab.com",
           "a@@b.com",
           "a@b@c.com",
           "a@",
           "",
           // domain
           "a@-b.com",
           "a@b-.com",
           "a@b.-com",
           "a@.b.com",
           "a@b..com",
           "a@b.com.",
           "a@b_c.com",
           "a@b",          // dotless: refused (see core/email_address.hpp)
           "a@localhost",  // dotless
           "a@1.2.3.4",    // all-digit top-level label: an IP address, not a domain
           "a@[192.0.2.1]",
           "a@[IPv6:2001:db8::1]",
           "a@b.c\xc3\xb6m",
           "a@" + std::string(64, 'd') + ".example",  // a 64-character label
           "a@" + std::string(250, 'b') + ".com",     // a domain over 253 characters
           too_long,
       }) {
    EXPECT_FALSE(all_agree(bad)) << bad;
  }
}

}  // namespace
}  // namespace atrium
