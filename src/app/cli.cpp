#include <CLI/CLI.hpp>
#include <iostream>

#include "app/app.hpp"

extern char** environ;

namespace atrium::app {

namespace {

// The subcommands and what they read beyond the common options, filled by CLI11 when parsing.
struct Commands {
  CLI::App* serve = nullptr;
  CLI::App* worker = nullptr;
  CLI::App* migrate = nullptr;
  CLI::App* version = nullptr;
  CLI::App* check = nullptr;
  CLI::App* superuser = nullptr;
  CLI::App* rotate = nullptr;
  CLI::App* data_list = nullptr;
  CLI::App* data_rotate_kek = nullptr;
  CLI::App* data_rotate = nullptr;
  CLI::App* data_reencrypt = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* checkpoint = nullptr;
  CLI::App* retention = nullptr;
  CLI::App* billing_run = nullptr;
  CLI::App* analytics_etl = nullptr;
  CLI::App* demo_seed = nullptr;
  CLI::App* ml_train = nullptr;
  CLI::App* churn_train = nullptr;
  CLI::App* churn_activate = nullptr;
  CLI::App* churn_score = nullptr;
  CLI::App* churn_evaluate = nullptr;
  CLI::App* user_export = nullptr;
  CLI::App* user_erase = nullptr;
  CLI::App* tenant_move = nullptr;
  CLI::App* tenant_export = nullptr;
  CLI::App* tenant_import = nullptr;
  std::string archive_path;
  std::string signing_key;  // tenant export: private key; tenant import: public key
  std::string key_file;
  std::string isolation;
  std::string user_id;
  std::string to_level;
  std::int64_t settle_ms = -1;
  ChurnCommandOptions churn;
  DemoOptions demo;
  MlTrainOptions ml;
  bool full = false;
  std::string from_date;
  std::string email;
  std::string password;
  std::string password_file;
  std::string algorithm;
  std::string tenant;
  std::string checkpoint_file;
  bool quiet = false;
};

// --config, --listen, --data-dir, --database-url, --tls-cert and --tls-key on `sub`.
void add_common(CLI::App* sub, CommonOptions& common) {
  sub->add_option("--config", common.config_path, "TOML configuration file");
  sub->add_option("--listen", common.listen, "HOST:PORT to listen on (server.listen)");
  sub->add_option("--data-dir", common.data_dir, "Directory for embedded data (storage.data_dir)");
  sub->add_option("--database-url", common.database_url, "postgresql://... or sqlite:PATH (storage.database_url)");
  sub->add_option("--tls-cert", common.tls_cert, "PEM certificate chain; enables TLS 1.3 (server.tls_cert)");
  sub->add_option("--tls-key", common.tls_key, "PEM private key (server.tls_key)");
}

// serve, worker, migrate, version, config check.
void add_server_commands(CLI::App& app, CommonOptions& common, Commands& c) {
  c.serve = app.add_subcommand("serve", "Run the HTTP server");
  add_common(c.serve, common);
  c.worker = app.add_subcommand("worker", "Run background jobs, the event relay and the scheduler (no HTTP)");
  add_common(c.worker, common);
  c.migrate = app.add_subcommand("migrate", "Apply pending database migrations");
  add_common(c.migrate, common);
  c.version = app.add_subcommand("version", "Print the version and build");
  CLI::App* config = app.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  c.check = config->add_subcommand("check", "Validate the configuration and print effective values");
  add_common(c.check, common);
}

// admin create-superuser, keys rotate, audit verify/checkpoint/retention, billing run.
void add_operator_commands(CLI::App& app, CommonOptions& common, Commands& c) {
  CLI::App* admin = app.add_subcommand("admin", "Administration");
  admin->require_subcommand(1);
  c.superuser = admin->add_subcommand("create-superuser", "Create a super admin (cross-tenant operator)");
  add_common(c.superuser, common);
  c.superuser->add_option("--email", c.email, "E-mail address")->required();
  auto* password = c.superuser->add_option(
      "--password", c.password, "Password (8-1024 characters); visible to other users in `ps`: prefer --password-file");
  auto* password_file = c.superuser->add_option("--password-file", c.password_file,
                                                "Read the password from this file's first line ('-': standard input)");
  password->excludes(password_file);
  CLI::App* keys = app.add_subcommand("keys", "Token signing keys and the data keys of encrypted fields");
  keys->require_subcommand(1);
  c.rotate = keys->add_subcommand("rotate", "Create a new signing key; older keys keep verifying");
  add_common(c.rotate, common);
  c.rotate->add_option("--algorithm", c.algorithm, "RS256, ES256 or EdDSA (default: identity.jwt_algorithm)");
  CLI::App* data = keys->add_subcommand("data", "Data keys of the fields encrypted at rest");
  data->require_subcommand(1);
  c.data_list = data->add_subcommand("list", "Each tenant's data keys and their state");
  c.data_rotate_kek = data->add_subcommand("rotate-kek", "New key-encryption key version; data keys re-wrapped");
  c.data_rotate = data->add_subcommand("rotate", "New data key; every field re-encrypted, the old key dropped");
  c.data_reencrypt = data->add_subcommand("reencrypt", "Seal every field not under the active data key (resumable)");
  for (CLI::App* sub : {c.data_list, c.data_rotate_kek, c.data_rotate, c.data_reencrypt}) {
    add_common(sub, common);
    sub->add_option("--tenant", c.tenant, "Only this tenant (its id); default: every tenant not purged");
    sub->add_flag("--quiet", c.quiet, "No progress bar");
  }

  CLI::App* tenant = app.add_subcommand("tenant", "Tenants");
  tenant->require_subcommand(1);
  c.tenant_move = tenant->add_subcommand(
      "move", "Move a tenant's data to another isolation level online (writes pause only for the switch)");
  add_common(c.tenant_move, common);
  c.tenant_move->add_option("--tenant", c.tenant, "The tenant (its id or slug)")->required();
  c.tenant_move->add_option("--to", c.to_level, "shared, schema or database")
      ->required()
      ->check(CLI::IsMember({"shared", "schema", "database"}));
  c.tenant_move->add_option(
      "--settle-ms", c.settle_ms,
      "Wait after the switch before removing the old copy (at least tenancy.cache_ttl_ms; default that + 2000)");
  c.tenant_move->add_flag("--quiet", c.quiet, "No progress bar");
  c.tenant_export = tenant->add_subcommand(
      "export", "Write everything of one tenant to an encrypted archive (docs/data-protection.md)");
  add_common(c.tenant_export, common);
  c.tenant_export->add_option("--tenant", c.tenant, "The tenant (its id or slug)")->required();
  c.tenant_export->add_option("--out", c.archive_path, "The archive to write (replaced only when complete)")
      ->required();
  c.tenant_export->add_option("--key-file", c.key_file, "Base64 of the 32-byte archive key")->required();
  c.tenant_export->add_option("--sign-key", c.signing_key,
                              "An Ed25519 private key (PEM, openssl genpkey -algorithm ed25519) to sign the archive");
  c.tenant_export->add_flag("--quiet", c.quiet, "No progress bar");
  c.tenant_import = tenant->add_subcommand(
      "import", "Restore a tenant from its archive, same ids, at any isolation level (docs/data-protection.md)");
  add_common(c.tenant_import, common);
  c.tenant_import->add_option("--in", c.archive_path, "The archive to read")->required();
  c.tenant_import->add_option("--key-file", c.key_file, "Base64 of the 32-byte archive key")->required();
  c.tenant_import->add_option("--verify-key", c.signing_key,
                              "An Ed25519 public key (PEM): the archive must be signed by its private key");
  c.tenant_import->add_option("--isolation", c.isolation, "shared, schema or database (default: as exported)")
      ->check(CLI::IsMember({"shared", "schema", "database"}));
  c.tenant_import->add_flag("--quiet", c.quiet, "No progress bar");

  CLI::App* audit = app.add_subcommand("audit", "Audit log");
  audit->require_subcommand(1);
  c.verify = audit->add_subcommand("verify", "Check the hash chains; exit 3 naming the first tampered entry");
  add_common(c.verify, common);
  c.verify->add_option("--tenant", c.tenant, "Only this tenant's chain (its id, or 'platform')");
  c.verify->add_option("--checkpoint", c.checkpoint_file, "Also check the heads recorded by `audit checkpoint`");
  c.checkpoint = audit->add_subcommand("checkpoint", "Print the head of every chain as JSON");
  add_common(c.checkpoint, common);
  c.retention = audit->add_subcommand("retention", "Delete entries of tenants purged before the retention");
  add_common(c.retention, common);

  CLI::App* billing = app.add_subcommand("billing", "Billing");
  billing->require_subcommand(1);
  c.billing_run = billing->add_subcommand("run", "Renew, invoice and charge what is due now, and run dunning");
  add_common(c.billing_run, common);
  c.billing_run->add_flag("--quiet", c.quiet, "No progress bar");

  CLI::App* analytics = app.add_subcommand("analytics", "Analytics");
  analytics->require_subcommand(1);
  c.analytics_etl = analytics->add_subcommand("etl", "Load the analytics warehouse from where the last run stopped");
  add_common(c.analytics_etl, common);
  c.analytics_etl->add_flag("--full", c.full, "Reload every day any source row has");
  c.analytics_etl->add_option("--from", c.from_date, "Reload from this date (YYYY-MM-DD) on");
  c.analytics_etl->add_flag("--quiet", c.quiet, "No progress bar");

  CLI::App* demo = app.add_subcommand("demo", "The demo platform");
  demo->require_subcommand(1);
  c.demo_seed = demo->add_subcommand("seed", "Build a believable SaaS business, day by day, in the database");
  add_common(c.demo_seed, common);
  c.demo_seed->add_option("--tenants", c.demo.tenants, "Customers (tenants) to sign up, 1-10000")
      ->capture_default_str();
  c.demo_seed->add_option("--months", c.demo.months, "Months of history up to today, 1-36")->capture_default_str();
  c.demo_seed->add_option("--seed", c.demo.seed, "The random generator's seed")->capture_default_str();
  c.demo_seed->add_flag("--quiet", c.quiet, "No progress bar");

  CLI::App* ml = app.add_subcommand("ml", "Machine learning");
  ml->require_subcommand(1);
  c.ml_train = ml->add_subcommand("train", "Cross-validate the churn ensemble on a CSV and print its scores");
  c.ml_train->add_option("--data", c.ml.data, "CSV file with a header row")->required();
  c.ml_train->add_option("--label", c.ml.label, "The label column")->required();
  c.ml_train->add_option("--positive", c.ml.positive, "The label value of the positive class")->required();
  c.ml_train->add_option("--cv", c.ml.cv, "Folds of the stratified cross-validation, 2-20")->capture_default_str();
  c.ml_train->add_option("--seed", c.ml.seed, "The random seed (folds, samples, initial weights)")
      ->capture_default_str();
  c.ml_train->add_flag("--fit-weights", c.ml.fit_weights, "Fit the ensemble's weights instead of 0.35/0.40/0.25");
  c.ml_train->add_flag("--json", c.ml.json, "Print the result as JSON");
  c.ml_train->add_flag("--quiet", c.ml.quiet, "No progress bar");

  CLI::App* churn = app.add_subcommand("churn", "Churn prediction from the platform's own history");
  churn->require_subcommand(1);
  c.churn_train = churn->add_subcommand("train", "Train the churn model on the platform's history and register it");
  add_common(c.churn_train, common);
  c.churn_train->add_option("--from", c.churn.from, "First cutoff (YYYY-MM-DD; default: the ledger's first day + 30)");
  c.churn_train->add_option("--to", c.churn.to, "End of the history used (YYYY-MM-DD; default: now)");
  c.churn_train->add_option("--horizon", c.churn.horizon_days, "Days after a cutoff a churn counts, 7-365")
      ->capture_default_str();
  c.churn_train->add_option("--step", c.churn.step_days, "Days between cutoffs, 1-90")->capture_default_str();
  c.churn_train->add_flag("--activate", c.churn.activate, "Make it the active model");
  c.churn_train->add_flag("--fit-weights", c.churn.fit_weights, "Fit the ensemble's weights");
  c.churn_train->add_flag("--quiet", c.churn.quiet, "No progress bar");
  c.churn_activate = churn->add_subcommand("activate", "Make a registered version the active model (rollback)");
  add_common(c.churn_activate, common);
  c.churn_activate->add_option("--version", c.churn.version, "The model version")->required();
  c.churn_score = churn->add_subcommand("score", "Score every customer now with the active model (the daily batch)");
  add_common(c.churn_score, common);
  c.churn_evaluate =
      churn->add_subcommand("evaluate", "ROC AUC of a model at a past instant against what happened after it");
  add_common(c.churn_evaluate, common);
  c.churn_evaluate->add_option("--version", c.churn.version, "The model version")->required();
  c.churn_evaluate->add_option("--at", c.churn.at, "The instant (YYYY-MM-DD or RFC 3339)")->required();
  c.churn_evaluate->add_option("--horizon", c.churn.horizon_days, "Days after it, 7-365")->capture_default_str();

  CLI::App* user = app.add_subcommand("user", "One person's data (GDPR): export and erasure");
  user->require_subcommand(1);
  c.user_export = user->add_subcommand("export", "Print everything Atrium holds about a user as JSON");
  c.user_erase = user->add_subcommand("erase", "Erase a user's personal data (the account's id stays)");
  for (CLI::App* sub : {c.user_export, c.user_erase}) {
    add_common(sub, common);
    auto* id = sub->add_option("--user", c.user_id, "The user's id");
    auto* email = sub->add_option("--email", c.email, "The user's e-mail address");
    id->excludes(email);
  }
}

int dispatch(const Commands& c, const CommonOptions& common) {
  if (c.serve->parsed()) return serve_command(common);
  if (c.worker->parsed()) return worker_command(common);
  if (c.migrate->parsed()) return migrate_command(common);
  if (c.version->parsed()) return version_command();
  if (c.check->parsed()) return config_check_command(common);
  if (c.superuser->parsed()) {
    if (c.password.empty() && c.password_file.empty()) {
      std::cerr << "atrium: --password-file (or --password) is required\n";
      return 2;
    }
    auto password = c.password_file.empty() ? Result<std::string>(c.password) : read_password(c.password_file);
    if (!password) {
      std::cerr << "atrium: " << password.error().message << "\n";
      return 2;
    }
    return create_superuser_command(common, c.email, *password);
  }
  if (c.rotate->parsed()) return rotate_keys_command(common, c.algorithm);
  if (c.data_list->parsed()) return key_command(common, KeyCommand::list, c.tenant, c.quiet);
  if (c.data_rotate_kek->parsed()) return key_command(common, KeyCommand::rotate_kek, c.tenant, c.quiet);
  if (c.data_rotate->parsed()) return key_command(common, KeyCommand::rotate_data_key, c.tenant, c.quiet);
  if (c.data_reencrypt->parsed()) return key_command(common, KeyCommand::reencrypt, c.tenant, c.quiet);
  if (c.tenant_move->parsed()) return tenant_move_command(common, c.tenant, c.to_level, c.settle_ms, c.quiet);
  if (c.tenant_export->parsed()) {
    return tenant_export_command(common, c.tenant, c.archive_path, {c.key_file, c.signing_key}, c.quiet);
  }
  if (c.tenant_import->parsed()) {
    return tenant_import_command(common, c.archive_path, {c.key_file, c.signing_key}, c.isolation, c.quiet);
  }
  if (c.verify->parsed()) return audit_verify_command(common, c.tenant, c.checkpoint_file);
  if (c.checkpoint->parsed()) return audit_checkpoint_command(common);
  if (c.retention->parsed()) return audit_retention_command(common);
  if (c.billing_run->parsed()) return billing_run_command(common, c.quiet);
  if (c.demo_seed->parsed()) return demo_seed_command(common, c.demo, c.quiet);
  if (c.analytics_etl->parsed()) return analytics_etl_command(common, c.full, c.from_date, c.quiet);
  if (c.ml_train->parsed()) return ml_train_command(c.ml);
  if (c.churn_train->parsed()) return churn_train_command(common, c.churn);
  if (c.churn_activate->parsed()) return churn_activate_command(common, c.churn);
  if (c.churn_score->parsed()) return churn_score_command(common);
  if (c.churn_evaluate->parsed()) return churn_evaluate_command(common, c.churn);
  if (c.user_export->parsed() || c.user_erase->parsed()) {
    if (c.user_id.empty() == c.email.empty()) {
      std::cerr << "atrium: one of --user and --email is required\n";
      return 2;
    }
    return c.user_export->parsed() ? user_export_command(common, c.user_id, c.email)
                                   : user_erase_command(common, c.user_id, c.email);
  }
  return 2;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"Atrium: a multi-tenant SaaS platform server", "atrium"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_text());
  app.set_help_all_flag("--help-all", "Show help for every command");
  CommonOptions common;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) common.environment.emplace_back(*e);
  Commands commands;
  add_server_commands(app, common, commands);
  add_operator_commands(app, common, commands);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return dispatch(commands, common);
}

}  // namespace atrium::app
