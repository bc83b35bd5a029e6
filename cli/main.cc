#include <algorithm>
#include <cstdio>

#include "commands.h"
#include "config_file.h"
#include "daemon.h"

namespace m2m::cli {

int ExitCodeFor(const Status& status) {
  if (status.ok()) return 0;
  if (status.code() == StatusCode::kInvalidArgument) return 2;
  if (status.retriable()) return 3;
  return 1;
}

}  // namespace m2m::cli

int main(int argc, char** argv) {
  CLI::App app(
      "mongo2mysql keeps a MySQL database in step with a MongoDB database, through Apache Kafka.\n\n"
      "  MongoDB --change streams--> capture --> Kafka --> apply (native or Spark) --> MySQL\n",
      "mongo2mysql");
  app.set_version_flag("--version", "mongo2mysql 0.1.0");
  app.require_subcommand(1);
  app.footer(
      "Run 'mongo2mysql <command> --help' for a command's options.\n"
      "Exit status: 0 success, 1 failure, 2 bad usage or configuration, 3 a server is unreachable.\n"
      "Documentation: README.md and docs/ in the source tree.");

  m2m::cli::Action action;
  m2m::cli::AddDoctorCommand(app, action);
  m2m::cli::AddPreviewCommand(app, action);
  m2m::cli::AddCaptureCommand(app, action);
  m2m::cli::AddApplyCommand(app, action);
  m2m::cli::AddStatusCommand(app, action);
  m2m::cli::AddVerifyCommand(app, action);
  m2m::cli::AddQuarantineCommand(app, action);
  m2m::cli::AddSettingsCommand(app, action);

  std::vector<std::string> args(argv + 1, argv + argc);
  m2m::Status st = m2m::cli::RefuseSecretsOnCommandLine(args);
  if (st.ok()) st = m2m::cli::ExpandConfigFile(app, args);
  if (!st.ok()) {
    std::fprintf(stderr, "mongo2mysql: %s\n", st.ToString().c_str());
    return m2m::cli::ExitCodeFor(st);
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes its argument vector last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0; everything else is bad usage.
    return app.exit(e) == 0 ? 0 : 2;
  }
  m2m::Status status = action ? action() : m2m::Status::Internal("no command ran");
  if (!status.ok()) std::fprintf(stderr, "mongo2mysql: %s\n", status.ToString().c_str());
  return m2m::cli::ExitCodeFor(status);
}
