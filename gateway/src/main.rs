//! promgate: the binary. Parses the command line, sets up logging and hands over to the
//! library; the only place `anyhow` is used.

use std::process::ExitCode;

/// New series allocate many small objects (label strings, index entries); glibc's allocator
/// spent a fifth of the writer's time on them in the 500k-new-series benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use gateway::cli::{CheckCommand, Cli, Command, TestCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            gateway::telemetry::init_tracing();
            match gateway::serve::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Promgate stopped with an error.");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Test(TestCommand::Rules { run, files }) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let opts = rules_engine::unittest::RunOptions { run };
            match rules_engine::unittest::run_test_files_with(&files, &opts, &mut out, &mut err) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error writing output: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(CheckCommand::Rules {
            lint,
            lint_fatal,
            files,
        }) => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            let opts = rules_engine::rules::check::LintOptions {
                duplicate_rules: lint == "duplicate-rules",
                fatal: lint_fatal,
            };
            match rules_engine::rules::check::check_rule_files(&files, opts, &mut out, &mut err) {
                Ok(code) => ExitCode::from(code as u8),
                Err(e) => {
                    eprintln!("error writing output: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(CheckCommand::Config { file }) => match gateway::config::Config::load(&file)
        {
            Ok(_) => {
                println!("Checking {}\n  SUCCESS", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("Checking {}\n  FAILED: {e}", file.display());
                ExitCode::from(1)
            }
        },
    }
}
