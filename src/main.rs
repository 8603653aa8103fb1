//! The `weft` command-line tool.
//!
//! Exit codes: 0 success; 1 internal error; 2 usage error (bad flags or
//! options); 3 `doctor` found a problem; 4 input error (a bad file, text,
//! SMILES, id, or a collection/bundle that does not exist or does not match).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // A collection file cut short by another program while mapped fails
    // the operation that read it, naming the file, instead of killing us.
    weft::handle_sigbus();
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(cli::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // The error chain, leaving out causes a message already quotes.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg = format!("{msg}: {c}");
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(cli::exit_code(&e))
        }
    }
}
