//! `kubectl-prext`: the kubectl plugin of prext (`kubectl prext …`).
//!
//! Installed on `PATH`, kubectl runs it for `kubectl prext …`. It reads the user's kubeconfig
//! and context like any kubectl command (`KUBECONFIG`, `--kubeconfig`, `--context`, `-n`) and
//! talks to prext through the cluster's API server. See `crates/prext-cli/src/plugin/mod.rs`.

fn main() -> std::process::ExitCode {
    prext_cli::plugin::main()
}
