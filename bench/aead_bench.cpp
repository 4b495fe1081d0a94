// AES-256-GCM sealing throughput of protection::aead_seal (a fresh random nonce, a key set up per value, the
// associated data of a field), for the block sizes `openssl speed -evp aes-256-gcm` reports, so bench/encryption.sh
// can print them side by side. Usage: atrium_aead_bench [SECONDS_PER_SIZE]. Prints "<bytes> <MB/s>" per size.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "protection/aead.hpp"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  const std::string key = atrium::protection::random_bytes(32);
  const std::string aad = "atrium-field:1|0190f1a2-0000-7000-8000-000000000001|billing_accounts|email|36:row";
  for (std::size_t size : {16, 64, 256, 1024, 8192, 16384}) {
    const std::string plaintext(size, 'x');
    std::size_t sink = 0;
    std::int64_t n = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + std::chrono::duration<double>(seconds);
    std::chrono::steady_clock::time_point now;
    do {
      for (int i = 0; i < 64; ++i) sink += atrium::protection::aead_seal(key, plaintext, aad).size();
      n += 64;
      now = std::chrono::steady_clock::now();
    } while (now < until);
    const double elapsed = std::chrono::duration<double>(now - start).count();
    std::printf("%zu %.1f\n", size, static_cast<double>(n) * static_cast<double>(size) / elapsed / 1e6);
    if (sink == 0) return 1;
  }
  return 0;
}
