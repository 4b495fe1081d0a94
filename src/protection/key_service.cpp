#include "protection/key_service.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/json.hpp"
#include "protection/aead.hpp"

namespace atrium::protection {

namespace {

namespace fs = std::filesystem;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 100) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Result<void> sync_path(const fs::path& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return fail(Errc::unavailable, "cannot open " + path.string() + " to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return fail(Errc::unavailable, "cannot sync " + path.string());
  return {};
}

// An exclusive lock on the directory's lock file, between processes (flock) and threads (the mutex).
class DirectoryLock {
 public:
  DirectoryLock(std::mutex& mutex, const fs::path& file) : guard_(mutex) {
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~DirectoryLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  bool locked() const { return fd_ >= 0; }

 private:
  std::lock_guard<std::mutex> guard_;
  int fd_ = -1;
};

class LocalKeyService final : public KeyService {
 public:
  LocalKeyService(fs::path directory, std::string master) : dir_(std::move(directory)), master_(std::move(master)) {}

  std::string_view provider() const override { return "local"; }

  Result<std::string> wrap(const std::string& key_name, std::string_view plaintext, std::string_view context) override {
    auto key = read(key_name);
    if (!key) return std::unexpected(key.error());
    if (key->versions.empty()) {
      if (auto r = create(key_name); !r) return std::unexpected(r.error());
      key = read(key_name);
      if (!key) return std::unexpected(key.error());
      if (key->versions.empty()) return fail(Errc::internal, "key " + key_name + " has no version after its creation");
    }
    const auto& [version, material] = *key->versions.rbegin();
    return "v" + std::to_string(version) + ":" + base64url(aead_seal(material, plaintext, context));
  }

  Result<std::string> unwrap(const std::string& key_name, std::string_view wrapped, std::string_view context) override {
    const int version = wrapped_version(wrapped);
    if (version <= 0) return fail(Errc::invalid_argument, "the wrapped key is malformed");
    auto key = read(key_name);
    if (!key) return std::unexpected(key.error());
    auto it = key->versions.find(version);
    if (it == key->versions.end()) {
      return fail(Errc::not_found, key->versions.empty()
                                       ? "key " + key_name + " does not exist (destroyed, or never created)"
                                       : "version " + std::to_string(version) + " of key " + key_name + " is gone");
    }
    auto bytes = from_base64url(wrapped.substr(wrapped.find(':') + 1));
    if (!bytes) return fail(Errc::invalid_argument, "the wrapped key is malformed");
    return aead_open(it->second, *bytes, context);
  }

  Result<int> rotate(const std::string& key_name) override { return add_version(key_name, false); }

  // The first version of `key_name`, unless another thread or process made one first.
  Result<int> create(const std::string& key_name) { return add_version(key_name, true); }

  Result<int> add_version(const std::string& key_name, bool only_when_missing) {
    DirectoryLock lock(mutex_, dir_ / ".lock");
    if (!lock.locked()) return fail(Errc::unavailable, "cannot lock " + (dir_ / ".lock").string());
    auto key = read(key_name);
    if (!key) return std::unexpected(key.error());
    if (only_when_missing && !key->versions.empty()) return key->versions.rbegin()->first;
    const int next = key->versions.empty() ? 1 : key->versions.rbegin()->first + 1;
    key->versions[next] = random_bytes(k_key_bytes);
    if (auto w = write(key_name, *key); !w) return std::unexpected(w.error());
    return next;
  }

  Result<int> latest_version(const std::string& key_name) override {
    auto key = read(key_name);
    if (!key) return std::unexpected(key.error());
    return key->versions.empty() ? 0 : key->versions.rbegin()->first;
  }

  Result<void> trim(const std::string& key_name, int min_version) override {
    DirectoryLock lock(mutex_, dir_ / ".lock");
    if (!lock.locked()) return fail(Errc::unavailable, "cannot lock " + (dir_ / ".lock").string());
    auto key = read(key_name);
    if (!key) return std::unexpected(key.error());
    if (key->versions.empty() || key->versions.rbegin()->first < min_version) {
      return fail(Errc::invalid_argument, "trimming would leave key " + key_name + " without a version");
    }
    key->versions.erase(key->versions.begin(), key->versions.lower_bound(min_version));
    return write(key_name, *key);
  }

  Result<void> destroy(const std::string& key_name) override {
    if (!valid_name(key_name)) return fail(Errc::invalid_argument, "invalid key name");
    DirectoryLock lock(mutex_, dir_ / ".lock");
    if (!lock.locked()) return fail(Errc::unavailable, "cannot lock " + (dir_ / ".lock").string());
    const fs::path path = file(key_name);
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) return {};  // already gone
    // Overwrite before unlinking, so the bytes do not linger in a free block (on a copy-on-write or flash file system
    // they may anyway: keep the directory on storage that is not snapshotted with the database).
    {
      std::ofstream out(path, std::ios::binary | std::ios::in | std::ios::out);
      const std::string zeros(size, '\0');
      out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    }
    if (auto s = sync_path(path, O_RDONLY); !s) return s;
    fs::remove(path, ec);
    if (ec) return fail(Errc::unavailable, "cannot remove " + path.string() + ": " + ec.message());
    return sync_path(dir_, O_RDONLY | O_DIRECTORY);
  }

 private:
  struct Key {
    std::map<int, std::string> versions;  // version -> 32 bytes
  };

  fs::path file(const std::string& key_name) const { return dir_ / (key_name + ".key"); }
  std::string aad(const std::string& key_name, int version) const {
    return "atrium-kek:" + key_name + ":" + std::to_string(version);
  }

  // The key's versions; none when its file does not exist.
  Result<Key> read(const std::string& key_name) const {
    if (!valid_name(key_name)) return fail(Errc::invalid_argument, "invalid key name");
    std::ifstream in(file(key_name), std::ios::binary);
    Key key;
    if (!in) return key;
    std::stringstream text;
    text << in.rdbuf();
    const Json j = Json::parse(text.str(), nullptr, false);
    if (!j.is_object() || !j.contains("versions") || !j["versions"].is_array()) {
      return fail(Errc::internal, file(key_name).string() + " is not a key file");
    }
    for (const auto& v : j["versions"]) {
      const int version = v.value("version", 0);
      auto sealed = from_base64url(v.value("key", std::string()));
      if (version <= 0 || !sealed) return fail(Errc::internal, file(key_name).string() + " is not a key file");
      auto material = aead_open(master_, *sealed, aad(key_name, version));
      if (!material) {
        return fail(Errc::unauthenticated,
                    file(key_name).string() + " does not open with this master key (identity.key_encryption_key)");
      }
      key.versions[version] = std::move(*material);
    }
    return key;
  }

  // Replaces the key's file atomically (a new file renamed over it, both synced).
  Result<void> write(const std::string& key_name, const Key& key) const {
    Json versions = Json::array();
    for (const auto& [version, material] : key.versions) {
      versions.push_back(
          {{"version", version}, {"key", base64url(aead_seal(master_, material, aad(key_name, version)))}});
    }
    const std::string text = Json{{"name", key_name}, {"versions", versions}}.dump();
    const fs::path target = file(key_name);
    const fs::path temp = dir_ / (key_name + ".key.tmp");
    {
      const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return fail(Errc::unavailable, "cannot write " + temp.string());
      const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return fail(Errc::unavailable, "cannot write " + temp.string());
    }
    std::error_code ec;
    fs::rename(temp, target, ec);
    if (ec) return fail(Errc::unavailable, "cannot replace " + target.string() + ": " + ec.message());
    return sync_path(dir_, O_RDONLY | O_DIRECTORY);
  }

  fs::path dir_;
  std::string master_;
  std::mutex mutex_;
};

}  // namespace

int wrapped_version(std::string_view wrapped) {
  if (!wrapped.starts_with("v")) return 0;
  const auto colon = wrapped.find(':');
  if (colon == std::string_view::npos) return 0;
  int v = 0;
  auto [end, ec] = std::from_chars(wrapped.data() + 1, wrapped.data() + colon, v);
  if (ec != std::errc() || end != wrapped.data() + colon) return 0;
  return v;
}

Result<std::unique_ptr<KeyService>> make_local_key_service(const std::string& directory, std::string master_key) {
  if (master_key.size() != k_key_bytes) return fail(Errc::invalid_argument, "the master key must be 32 bytes");
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec) return fail(Errc::invalid_argument, "protection.key_directory " + directory + ": " + ec.message());
  fs::permissions(directory, fs::perms::owner_all, fs::perm_options::replace, ec);
  return std::unique_ptr<KeyService>(new LocalKeyService(directory, std::move(master_key)));
}

}  // namespace atrium::protection
