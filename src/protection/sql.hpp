#pragma once

// The SQL of the keyring: the data_keys table (migration 0021 on PostgreSQL; k_sqlite_schema in the keyring's own
// SQLite file). Constant text with bind parameters; $1 is always the tenant id.

#include "storage/database.hpp"

namespace atrium::protection {

using storage::Statement;

inline constexpr std::string_view k_sqlite_schema = R"sql(
CREATE TABLE IF NOT EXISTS data_keys (
  tenant_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
  wrapped TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  retired_at BIGINT,
  PRIMARY KEY (tenant_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS data_keys_active ON data_keys (tenant_id) WHERE state = 'active';
)sql";

constexpr Statement k_key_active{"data_key_active",
                                 "SELECT version, wrapped FROM data_keys WHERE tenant_id = $1 AND state = 'active'"};
constexpr Statement k_key_version{"data_key_version",
                                  "SELECT wrapped FROM data_keys WHERE tenant_id = $1 AND version = $2"};
constexpr Statement k_key_insert{"data_key_insert",
                                 "INSERT INTO data_keys (tenant_id, version, state, wrapped, created_at, retired_at) "
                                 "VALUES ($1, $2, 'active', $3, $4, NULL) ON CONFLICT DO NOTHING"};
constexpr Statement k_key_restore{"data_key_restore",
                                  "INSERT INTO data_keys (tenant_id, version, state, wrapped, created_at, retired_at) "
                                  "VALUES ($1, $2, $3, $4, $5, $6)"};
constexpr Statement k_key_count{"data_key_count", "SELECT COUNT(*) FROM data_keys WHERE tenant_id = $1"};
constexpr Statement k_key_list{
    "data_key_list",
    "SELECT version, state, wrapped, created_at, retired_at FROM data_keys WHERE tenant_id = $1 ORDER BY version"};
constexpr Statement k_key_list_locked{"data_key_list_locked",
                                      "SELECT version, state, wrapped, created_at, retired_at FROM data_keys "
                                      "WHERE tenant_id = $1 ORDER BY version FOR UPDATE"};
constexpr Statement k_key_max_version{"data_key_max_version",
                                      "SELECT MAX(version) FROM data_keys WHERE tenant_id = $1"};
// PostgreSQL: the tenant's rows locked (an aggregate cannot be), so two rotations take turns.
constexpr Statement k_key_max_version_locked{
    "data_key_max_version_locked",
    "SELECT version FROM data_keys WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1 FOR UPDATE"};
constexpr Statement k_key_retire_active{
    "data_key_retire_active",
    "UPDATE data_keys SET state = 'retired', retired_at = $2 WHERE tenant_id = $1 AND state = 'active'"};
constexpr Statement k_key_rewrap{"data_key_rewrap",
                                 "UPDATE data_keys SET wrapped = $3 WHERE tenant_id = $1 AND version = $2"};
constexpr Statement k_key_last_retired{
    "data_key_last_retired", "SELECT MAX(retired_at) FROM data_keys WHERE tenant_id = $1 AND state = 'retired'"};
constexpr Statement k_key_delete_retired{"data_key_delete_retired",
                                         "DELETE FROM data_keys WHERE tenant_id = $1 AND state = 'retired'"};
constexpr Statement k_key_delete_all{"data_key_delete_all", "DELETE FROM data_keys WHERE tenant_id = $1"};

}  // namespace atrium::protection
