#pragma once

#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace atrium::http {

// When the first certificate of a PEM file (the leaf of server.tls_cert) stops being valid: its notAfter as Unix
// seconds. invalid_argument when the file holds no readable certificate.
Result<std::int64_t> certificate_not_after(const std::string& pem_path);

}  // namespace atrium::http
