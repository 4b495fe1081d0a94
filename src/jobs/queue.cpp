#include "jobs/queue.hpp"

namespace atrium::jobs {

bool valid_queue_name(std::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<void> validate(const NewJob& job) {
  if (!valid_queue_name(job.type))
    return fail(Errc::invalid_argument, "job type must be 1-100 characters of [a-z0-9._-]");
  if (!valid_queue_name(job.queue))
    return fail(Errc::invalid_argument, "queue must be 1-100 characters of [a-z0-9._-]");
  if (job.priority < 0 || job.priority > 9) return fail(Errc::invalid_argument, "priority must be 0-9");
  if (job.max_attempts < 1 || job.max_attempts > 1000) {
    return fail(Errc::invalid_argument, "max_attempts must be 1-1000");
  }
  if (job.idempotency_key.size() > 255) return fail(Errc::invalid_argument, "idempotency key is over 255 bytes");
  if (!job.payload.is_object()) return fail(Errc::invalid_argument, "payload must be a JSON object");
  return {};
}

}  // namespace atrium::jobs
