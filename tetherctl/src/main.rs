//! `tetherctl`: log in through the Tether hub, act as kubectl's credential plugin, and
//! administer the hub over gRPC.

fn main() -> std::process::ExitCode {
    tetherctl::cli::main("tetherctl")
}
