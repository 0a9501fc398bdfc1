//! `kubectl-tether`: `tetherctl` as a kubectl plugin, so `kubectl tether login ...` works
//! when this binary is on `PATH`.

fn main() -> std::process::ExitCode {
    tetherctl::cli::main("kubectl tether")
}
