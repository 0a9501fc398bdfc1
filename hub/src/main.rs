//! `tether-hub`: the Tether hub server and its maintenance commands.

fn main() -> std::process::ExitCode {
    tether_hub::cli::main()
}
