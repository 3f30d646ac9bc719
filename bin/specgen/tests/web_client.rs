//! The web client's own tests, run as part of the workspace's: its unit
//! tests (Node's runner) and its end-to-end suite in a real Chromium
//! against this very binary (`web/tests/run-all.sh` starts it on free
//! ports). Needs Node and npm, and Debian's `chromium` (`.ci/run` installs
//! it when missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn web_client_unit_and_browser_suites_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg("web/tests/run-all.sh")
        .current_dir(&root)
        .env("SPECGEN_BIN", env!("CARGO_BIN_EXE_specgen"))
        .env_remove("SPECGEN_URL")
        .status()
        .expect("bash runs");
    assert!(status.success(), "the web client's tests failed (their output is above)");
}
