//! Start-up failures: said once, clearly.

/// The fatal start-up error was printed twice (a log line and an `eprintln!`); it is logged once.
#[test]
fn a_fatal_start_up_error_is_printed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prext"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", "bogus:nothing"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run prext");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("unsupported store URL").count(),
        1,
        "printed once:\n{stderr}"
    );
}
