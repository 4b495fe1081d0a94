#pragma once

// Reading a DNS answer: standard headers only, so the fuzz target (fuzz/fuzz_dns_answer.cpp) runs the same code
// (the fuzz build's clang cannot use GCC 12's <expected>).

#include <optional>
#include <string>
#include <vector>

namespace atrium::domains {

// The TXT records of a DNS answer message (RFC 1035 wire format, as res_nquery returns it): each record's
// character-strings joined (RFC 7208 section 3.3), records of other types skipped (a CNAME on the way). nullopt when
// the message or one of its records is malformed. Parsed with glibc's ns_initparse / ns_parserr.
std::optional<std::vector<std::string>> txt_records(const unsigned char* message, int length);

}  // namespace atrium::domains
