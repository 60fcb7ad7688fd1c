//! Command line: `promgate serve`, `promgate test rules`, `promgate check config`. Verbs and
//! exit codes follow promtool where promtool has the same verb.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "promgate",
    version,
    about = "Prometheus remote-write gateway and rule evaluator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (embedded defaults when no config is given).
    Serve(ServeArgs),
    /// Run unit tests (promtool-compatible).
    #[command(subcommand)]
    Test(TestCommand),
    /// Check files for errors.
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// YAML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the config's `listen`); default 0.0.0.0:9091.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite window (overrides the config's `storage.path`); default ./data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Unit tests for rules, in promtool's test-file format.
    Rules {
        /// Only run test groups whose name matches this regular expression (repeatable).
        #[arg(long)]
        run: Vec<String>,
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Check rule files for errors (promtool-compatible output and exit codes).
    Rules {
        /// Lint: duplicate-rules or none.
        #[arg(long, default_value = "duplicate-rules", value_parser = ["duplicate-rules", "none"])]
        lint: String,
        /// Exit 3 when a lint finds something.
        #[arg(long)]
        lint_fatal: bool,
        /// Rule files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate a promgate configuration file.
    Config {
        /// Configuration file.
        file: PathBuf,
    },
}
