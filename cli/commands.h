// Each subcommand of build/mongo2mysql lives in its own file and registers itself here.
// A subcommand parses its flags into an options struct and hands it to the core library; main()
// turns the returned Status into an exit code (see ExitCodeFor).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

#include "m2m/status.h"

namespace m2m::cli {

// The subcommand's work, run after parsing; set by the subcommand's callback.
using Action = std::function<Status()>;

void AddDoctorCommand(CLI::App& app, Action& action);
void AddPreviewCommand(CLI::App& app, Action& action);
void AddCaptureCommand(CLI::App& app, Action& action);
void AddApplyCommand(CLI::App& app, Action& action);
void AddStatusCommand(CLI::App& app, Action& action);
void AddVerifyCommand(CLI::App& app, Action& action);
void AddQuarantineCommand(CLI::App& app, Action& action);
// `mongo2mysql settings`: prints docs/configuration.md or the Spark job's settings table (cli/settings.h).
void AddSettingsCommand(CLI::App& app, Action& action);

// 0 success; 2 bad usage or configuration; 3 a server could not be reached (retrying may help);
// 1 any other failure.
int ExitCodeFor(const Status& status);

}  // namespace m2m::cli
