//! Resource limits a user's session really has: a sync of many files under a low
//! open-file limit (desktop sessions default to 1,024) must not run out of files.

use std::process::Command;

#[test]
fn many_files_sync_under_a_low_open_file_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, home) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("home"),
    );
    for d in [&a, &b, &home] {
        std::fs::create_dir(d).unwrap();
    }
    // More files than the limit, in one copy batch.
    for i in 0..1_500 {
        std::fs::write(a.join(format!("f{i:04}")), format!("file {i}")).unwrap();
    }
    let bin = assert_cmd::cargo::cargo_bin("ferry");
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" sync \"$1\" \"$2\"")
        .arg(&bin)
        .arg(&a)
        .arg(&b)
        .env("FERRY_HOME", &home)
        .env("FERRY_CONFIG", tmp.path().join("no-config.toml"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(&b).unwrap().count(), 1_500 + 1); // + .ferry
    assert_eq!(
        std::fs::read_to_string(b.join("f1499")).unwrap(),
        "file 1499"
    );
}
