//! The `ember` binary: parses the command line, runs it, prints a fatal error once (no
//! backtrace) and exits with the error's documented code.

use clap::Parser;

fn main() {
    let cli = ember::cli::Cli::parse();
    if let Err(e) = ember::cli::run(cli) {
        eprintln!("{}", ember_config::error::escape_controls(&e.to_string()));
        std::process::exit(e.exit_code());
    }
}
