#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "app/demo.hpp"
#include "core/error.hpp"

namespace atrium::app {

// The `atrium` command line. Returns the process exit code: 0 success, 1 runtime failure, 2 bad usage or
// configuration.
int run(int argc, char** argv);

// Commands, callable from tests with an explicit environment.
struct CommonOptions {
  std::string config_path;
  std::string listen;
  std::string data_dir;
  std::string database_url;
  std::string tls_cert;
  std::string tls_key;
  std::vector<std::string> environment;  // NAME=VALUE
};

int serve_command(const CommonOptions& options);
// Runs the job runner, event relay and scheduler until SIGTERM or SIGINT; running jobs get jobs.shutdown_grace_ms.
int worker_command(const CommonOptions& options);
int migrate_command(const CommonOptions& options);
int config_check_command(const CommonOptions& options);
int version_command();
// "atrium <version> (revision <rev>, <compiler>, <build type>)": what `atrium version` and `atrium --version` print.
std::string version_text();
// A password from the first line of a file ('-': standard input), without its line ending; invalid_argument when
// the file cannot be read or the line is empty.
Result<std::string> read_password(const std::string& path);
int create_superuser_command(const CommonOptions& options, const std::string& email, const std::string& password);
int rotate_keys_command(const CommonOptions& options, const std::string& algorithm);
// `atrium keys data list|rotate-kek|rotate|reencrypt [--tenant ID]` (docs/data-protection.md): the data keys of fields
// encrypted at rest, for one tenant or every tenant not purged. rotate = a new data key, then reencrypt; reencrypt
// seals every value not under the active key and drops the retired keys once nothing is left under them.
enum class KeyCommand { list, rotate_kek, rotate_data_key, reencrypt };
int key_command(const CommonOptions& options, KeyCommand command, const std::string& tenant, bool quiet);
// Exit 0: every chain intact; 3: tampering found (each finding printed); 2: no such chain or a bad checkpoint
// file; 1: could not check.
int audit_verify_command(const CommonOptions& options, const std::string& tenant, const std::string& checkpoint_path);
int audit_checkpoint_command(const CommonOptions& options);
int audit_retention_command(const CommonOptions& options);
// The billing run on demand (renewals, invoices, charges, dunning retries) with a progress bar on stderr; exit 1
// when it stopped on an error (what committed stays; running it again continues without billing twice).
int billing_run_command(const CommonOptions& options, bool quiet);
// `atrium demo seed [--tenants N] [--months M] [--seed S]`: the demo platform (app/demo.hpp) in the configured
// database.
int demo_seed_command(const CommonOptions& options, const DemoOptions& demo, bool quiet);
// `atrium analytics etl [--full] [--from YYYY-MM-DD]`: one warehouse ETL run, with a progress bar on a terminal.
int analytics_etl_command(const CommonOptions& options, bool full, const std::string& from, bool quiet);

// `atrium ml train --data FILE --label COLUMN --positive VALUE [--cv K]`: cross-validates the churn ensemble on a CSV
// (docs/ml.md) and prints each model's and the ensemble's scores. Exit 2 for a file it cannot use.
struct MlTrainOptions {
  std::string data;
  std::string label;
  std::string positive;
  int cv = 5;
  std::uint64_t seed = 42;
  bool fit_weights = false;
  bool json = false;
  bool quiet = false;
};
int ml_train_command(const MlTrainOptions& options);

// `atrium churn train|activate|score|evaluate` (docs/ml.md, Churn prediction): the churn model from the platform's
// own history, in the configured database.
struct ChurnCommandOptions {
  std::string from;  // YYYY-MM-DD or RFC 3339; "" default
  std::string to;
  std::string at;
  int horizon_days = 90;
  int step_days = 7;
  int version = 0;
  bool activate = false;
  bool fit_weights = false;
  bool quiet = false;
};
int churn_train_command(const CommonOptions& options, const ChurnCommandOptions& churn);
int churn_activate_command(const CommonOptions& options, const ChurnCommandOptions& churn);
int churn_score_command(const CommonOptions& options);
// user export / erase (docs/data-protection.md, "One person's data"): the user by --user ID or --email.
int user_export_command(const CommonOptions& options, const std::string& user_id, const std::string& email);
int user_erase_command(const CommonOptions& options, const std::string& user_id, const std::string& email);
int churn_evaluate_command(const CommonOptions& options, const ChurnCommandOptions& churn);
// `atrium tenant move --tenant ID|SLUG --to LEVEL [--settle-ms MS]` (app/tenant_move.hpp): moves or finishes moving
// a tenant's store, printing what was copied and verified. Exit 2: no such tenant or another move under way.
int tenant_move_command(const CommonOptions& options, const std::string& tenant, const std::string& to,
                        std::int64_t settle_ms, bool quiet);
// `atrium tenant export --tenant ID|SLUG --out FILE --key-file FILE [--sign-key PEM]` and `atrium tenant import --in
// FILE --key-file FILE [--verify-key PEM] [--isolation LEVEL]` (app/tenant_archive.hpp), printing each table's rows
// and SHA-256. Exit 2: no such tenant, a bad archive, key or signature, or a conflict with what the platform holds.
struct ArchiveKeyFiles {
  std::string archive_key;  // base64 of the 32-byte archive key
  std::string signing_key;  // "" or a PEM file: export, the private key that signs; import, the public key that checks
};
int tenant_export_command(const CommonOptions& options, const std::string& tenant, const std::string& out,
                          const ArchiveKeyFiles& keys, bool quiet);
int tenant_import_command(const CommonOptions& options, const std::string& in, const ArchiveKeyFiles& keys,
                          const std::string& isolation, bool quiet);

}  // namespace atrium::app
