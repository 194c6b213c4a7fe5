//! `ferrolb`: one binary for the controller, the speaker and the offline
//! tools. Subcommands map to modules; this file only parses arguments, sets
//! up logging and turns errors into exit codes.

mod bgp_mode;
mod cli;
mod offline;
mod process;
mod serve;
mod speaker_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match args.command {
        cli::Command::Plan(cmd) => offline::plan::run(&cmd),
        cli::Command::Validate(cmd) => offline::validate::run(&cmd),
        cli::Command::Explain(cmd) => offline::explain::run(&cmd),
        cli::Command::Controller(args) => serve::controller(*args),
        cli::Command::Webhook(cmd) => serve::webhook(*cmd),
        cli::Command::Speaker(opts) => speaker_cmd::speaker(*opts),
        cli::Command::Crds => {
            print!("{}", ferrolb_api::crds::render_yaml());
            ExitCode::SUCCESS
        }
    }
}
