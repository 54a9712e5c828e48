//! The `lakitu` binary: parse the command line and hand over to [`lakitu::cli`].

fn main() -> std::process::ExitCode {
    lakitu::cli::main()
}
