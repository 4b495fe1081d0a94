#include "domains/domain.hpp"

#include <algorithm>
#include <cctype>

#include "core/clock.hpp"  // format_rfc3339

namespace atrium::domains {

std::string_view status_name(DomainStatus s) { return s == DomainStatus::verified ? "verified" : "pending"; }

std::string challenge_name(std::string_view hostname) {
  return std::string(k_challenge_label) + "." + std::string(hostname);
}

std::string challenge_value(std::string_view token) { return std::string(k_challenge_prefix) + std::string(token); }

Json to_json(const Domain& d) {
  Json certificate = nullptr;
  if (d.certificate) {
    certificate = {{"not_after", format_rfc3339(d.certificate->not_after)},
                   {"subject", d.certificate->subject},
                   {"fingerprint_sha256", d.certificate->fingerprint_sha256}};
  }
  return {{"id", d.id},
          {"hostname", d.hostname},
          {"status", status_name(d.status)},
          {"verification",
           {{"type", "TXT"}, {"name", challenge_name(d.hostname)}, {"value", challenge_value(d.verification_token)}}},
          {"certificate", certificate},
          {"verified_at", d.verified_at ? Json(format_rfc3339(*d.verified_at)) : Json(nullptr)},
          {"created_at", format_rfc3339(d.created_at)}};
}

std::optional<std::string> normalize_hostname(std::string_view text) {
  std::string host(text);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > 253) return std::nullopt;
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  int labels = 0;
  std::string_view last;
  std::size_t start = 0;
  while (start <= host.size()) {
    const std::size_t dot = std::min(host.find('.', start), host.size());
    const std::string_view label = std::string_view(host).substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return std::nullopt;
    if (!std::all_of(label.begin(), label.end(),
                     [](unsigned char c) { return std::islower(c) || std::isdigit(c) || c == '-'; })) {
      return std::nullopt;
    }
    ++labels;
    last = label;
    start = dot + 1;
  }
  if (labels < 2) return std::nullopt;
  if (std::all_of(last.begin(), last.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
  if (host == "localhost" || host.ends_with(".localhost")) return std::nullopt;
  return host;
}

std::string host_of(std::string_view header) {
  if (header.empty() || header.front() == '[') return {};  // IPv6 literal
  const auto colon = header.rfind(':');
  std::string host(header.substr(0, colon));
  if (!host.empty() && host.back() == '.') host.pop_back();
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool host_chars = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::islower(c) || std::isdigit(c) || c == '-' || c == '.';
  });
  if (host.empty() || !host_chars || host.back() == '.') return {};  // no host name any domain could have
  if (std::all_of(host.begin(), host.end(), [](unsigned char c) { return std::isdigit(c) || c == '.'; })) {
    return {};  // IPv4 literal
  }
  return host;
}

}  // namespace atrium::domains
