#include "core/email_address.hpp"

namespace atrium {

namespace {

constexpr std::size_t k_max_address = 254;  // RFC 5321 4.5.3.1.3: a path is at most 256 octets, with <>
constexpr std::size_t k_max_local = 64;     // RFC 5321 4.5.3.1.1
constexpr std::size_t k_max_domain = 253;   // RFC 1035 2.3.4, in text form without the final dot
constexpr std::size_t k_max_label = 63;     // RFC 1035 2.3.4

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c); }

// RFC 5322 3.2.3 atext.
bool is_atext(char c) {
  return is_alpha_digit(c) || std::string_view("!#$%&'*+/=?^_`{|}~-").find(c) != std::string_view::npos;
}

bool dot_atom(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '.') {
      if (s[i + 1] == '.') return false;  // s.back() is not '.', so i + 1 < s.size()
    } else if (!is_atext(s[i])) {
      return false;
    }
  }
  return true;
}

bool is_label(std::string_view label) {
  if (label.empty() || label.size() > k_max_label || label.front() == '-' || label.back() == '-') return false;
  for (const char c : label) {
    if (!is_alpha_digit(c) && c != '-') return false;
  }
  return true;
}

bool is_mail_domain(std::string_view domain) {
  if (domain.empty() || domain.size() > k_max_domain) return false;
  std::size_t labels = 0;
  std::string_view last;
  for (std::size_t start = 0;;) {
    const auto dot = domain.find('.', start);
    last = domain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_label(last)) return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (labels < 2) return false;
  for (const char c : last) {
    if (!is_digit(c)) return true;  // a top-level domain is never all digits (RFC 3696 2)
  }
  return false;
}

}  // namespace

bool valid_email_address(std::string_view address) {
  if (address.empty() || address.size() > k_max_address) return false;
  const auto at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) return false;
  const auto local = address.substr(0, at);
  return local.size() <= k_max_local && dot_atom(local) && is_mail_domain(address.substr(at + 1));
}

bool is_dot_atom(std::string_view text) { return dot_atom(text); }

}  // namespace atrium
