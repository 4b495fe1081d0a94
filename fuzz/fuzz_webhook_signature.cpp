// Fuzzes webhook signatures (src/webhooks/signature.cpp): the input as an `Atrium-Signature` header a receiver is
// handed, and as a body signed and verified. Any header is answered true or false without a crash; one that was not
// made with the secret never verifies; a signed body verifies at its time, and not with another secret, another
// body or outside the tolerance.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "check.hpp"
#include "webhooks/signature.hpp"

namespace {

using atrium::fuzz::check;

constexpr std::string_view k_secret = "whsec_fuzz-secret-000000000000000000000000000000";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using atrium::webhooks::sign;
  using atrium::webhooks::verify;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // As a header: never verifies a body it was not made for (the MAC needs the secret).
  const std::int64_t now = 1'800'000'000;
  const bool accepted = verify(input, k_secret, "{}", now);
  if (accepted) check(input.find(sign(k_secret, now, "{}").substr(14)) != std::string_view::npos, "no forged MAC");
  (void)verify(input, "", "{}", now);
  (void)verify(input, k_secret, "{}", now, -1);
  // As a body, signed at a time taken from the input.
  std::int64_t t = 0;
  if (size >= 4) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, data, 4);
    t = bits;
  }
  const std::string header = sign(k_secret, t, input);
  check(verify(header, k_secret, input, t), "a signed body verifies at its time");
  check(verify(header, k_secret, input, t + 300), "and within the tolerance");
  check(!verify(header, k_secret, input, t + 301), "not after it");
  check(!verify(header, "whsec_another", input, t), "not with another secret");
  check(!verify(header, k_secret, std::string(input) + "x", t), "not for another body");
  return 0;
}
