#include <CLI/CLI.hpp>

#include "app/app.hpp"

extern char** environ;

namespace atrium::app {

int run(int argc, char** argv) {
  CLI::App app{"Atrium: a multi-tenant SaaS platform server", "atrium"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");

  CommonOptions common;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) common.environment.emplace_back(*e);

  auto add_common = [&common](CLI::App* sub) {
    sub->add_option("--config", common.config_path, "TOML configuration file");
    sub->add_option("--listen", common.listen, "HOST:PORT to listen on (server.listen)");
    sub->add_option("--data-dir", common.data_dir, "Directory for embedded data (storage.data_dir)");
    sub->add_option("--database-url", common.database_url, "postgresql://... or sqlite:PATH (storage.database_url)");
    sub->add_option("--tls-cert", common.tls_cert, "PEM certificate chain; enables TLS 1.3 (server.tls_cert)");
    sub->add_option("--tls-key", common.tls_key, "PEM private key (server.tls_key)");
  };

  CLI::App* serve = app.add_subcommand("serve", "Run the HTTP server");
  add_common(serve);
  CLI::App* worker = app.add_subcommand("worker", "Run background jobs, the event relay and the scheduler (no HTTP)");
  add_common(worker);
  CLI::App* migrate = app.add_subcommand("migrate", "Apply pending database migrations");
  add_common(migrate);
  CLI::App* version = app.add_subcommand("version", "Print the version and build");
  CLI::App* config = app.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  CLI::App* check = config->add_subcommand("check", "Validate the configuration and print effective values");
  add_common(check);

  CLI::App* admin = app.add_subcommand("admin", "Administration");
  admin->require_subcommand(1);
  CLI::App* superuser = admin->add_subcommand("create-superuser", "Create a super admin (cross-tenant operator)");
  add_common(superuser);
  std::string email;
  std::string password;
  superuser->add_option("--email", email, "E-mail address")->required();
  superuser->add_option("--password", password, "Password (8-1024 characters)")->required();
  CLI::App* keys = app.add_subcommand("keys", "Token signing keys");
  keys->require_subcommand(1);
  CLI::App* rotate = keys->add_subcommand("rotate", "Create a new signing key; older keys keep verifying");
  add_common(rotate);
  std::string algorithm;
  rotate->add_option("--algorithm", algorithm, "RS256, ES256 or EdDSA (default: identity.jwt_algorithm)");

  CLI::App* audit = app.add_subcommand("audit", "Audit log");
  audit->require_subcommand(1);
  CLI::App* verify = audit->add_subcommand("verify", "Check the hash chains; exit 3 naming the first tampered entry");
  add_common(verify);
  std::string tenant;
  std::string checkpoint;
  verify->add_option("--tenant", tenant, "Only this tenant's chain (its id, or 'platform')");
  verify->add_option("--checkpoint", checkpoint, "Also check the heads recorded by `audit checkpoint`");
  CLI::App* export_checkpoint = audit->add_subcommand("checkpoint", "Print the head of every chain as JSON");
  add_common(export_checkpoint);
  CLI::App* retention = audit->add_subcommand("retention", "Delete entries of tenants purged before the retention");
  add_common(retention);

  CLI::App* billing = app.add_subcommand("billing", "Billing");
  billing->require_subcommand(1);
  CLI::App* billing_run = billing->add_subcommand("run", "Renew, invoice and charge what is due now, and run dunning");
  add_common(billing_run);
  bool quiet = false;
  billing_run->add_flag("--quiet", quiet, "No progress bar");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (serve->parsed()) return serve_command(common);
  if (worker->parsed()) return worker_command(common);
  if (migrate->parsed()) return migrate_command(common);
  if (version->parsed()) return version_command();
  if (check->parsed()) return config_check_command(common);
  if (superuser->parsed()) return create_superuser_command(common, email, password);
  if (rotate->parsed()) return rotate_keys_command(common, algorithm);
  if (verify->parsed()) return audit_verify_command(common, tenant, checkpoint);
  if (export_checkpoint->parsed()) return audit_checkpoint_command(common);
  if (retention->parsed()) return audit_retention_command(common);
  if (billing_run->parsed()) return billing_run_command(common, quiet);
  return 2;
}

}  // namespace atrium::app
