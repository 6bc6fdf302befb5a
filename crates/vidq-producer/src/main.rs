//! `vidq`: enqueue jobs, follow them, cancel them, and look after dead tasks.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("vidq: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(args))
}
