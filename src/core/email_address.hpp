#pragma once

#include <string_view>

namespace atrium {

// The one e-mail address check: every address Atrium accepts (users, members, tenant owners, billing accounts,
// Reply-To, the sender of its own mail) passes through it. True for an RFC 5322 addr-spec in the form RFC 5321
// allows in a Mailbox, restricted to what is used in practice:
//   - local part: a dot-atom of 1-64 characters: letters, digits and !#$%&'*+/=?^_`{|}~- , no leading, trailing
//     or double dot. Quoted strings ("a b"@example.com) are not accepted;
//   - exactly one '@';
//   - domain: at most 253 characters of dot-separated LDH labels (letters, digits, '-'), each 1-63 characters,
//     neither starting nor ending with '-'; at least two labels, the last not all digits. A dotless domain
//     ("a@localhost") is refused: ICANN does not allow dotless mail domains and such an address cannot reach
//     anyone on the Internet. Address literals ("a@[192.0.2.1]") are not accepted;
//   - at most 254 characters in all; ASCII only.
// So no display names ("A" <a@b.com>), angle brackets, comments, spaces, quotes, control characters or NUL:
// an accepted address cannot break a header, an SMTP command or a lookup. The check is case-insensitive; it does
// not change the address (callers that compare addresses lower-case them).
bool valid_email_address(std::string_view address);

// RFC 5322 3.2.3 dot-atom text: atext runs separated by single dots (e.g. a Message-ID's halves).
bool is_dot_atom(std::string_view text);

}  // namespace atrium
