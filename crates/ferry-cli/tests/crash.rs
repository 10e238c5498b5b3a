//! Crash tests: `kill -9` of a real `ferry sync` at many points of a run. After every
//! kill each path holds its old content or its complete new content (safety rule 1), and
//! a rerun converges without redoing verified work or losing anything (rule 5).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{ferry_cmd, files, folders};

fn content(i: usize, generation: u8) -> Vec<u8> {
    let len = 20_000 + (i * 7919) % 200_000;
    (0..len)
        .map(|j| {
            (j as u8)
                .wrapping_mul(31)
                .wrapping_add(i as u8 ^ generation)
        })
        .collect()
}

fn ferry(home: &Path, a: &Path, b: &Path) -> Command {
    let mut c = ferry_cmd(home);
    c.arg("sync").arg(a).arg(b).arg("--yes");
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

#[test]
fn kill_9_at_any_point_loses_nothing_and_resumes() {
    let (tmp, [a, b]) = folders(["a", "b"]);
    let home = tmp.path().join("home");
    const N: usize = 300;
    for i in 0..N {
        let dir = a.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}")), content(i, 0)).unwrap();
    }
    assert!(ferry(&home, &a, &b).status().unwrap().success());
    let old = files(&b);
    // A new generation of every file on a; b still has the old one.
    for i in 0..N {
        std::fs::write(a.join(format!("d{}/f{i}", i % 10)), content(i, 1)).unwrap();
    }
    let new = files(&a);
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80, 160] {
        let mut child = ferry(&home, &a, &b).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for (path, bytes) in files(&b) {
            assert!(
                old.get(&path) == Some(&bytes) || new.get(&path) == Some(&bytes),
                "after kill at {delay_ms} ms, {path} holds neither its old nor its new content"
            );
        }
    }
    let status = ferry(&home, &a, &b).status().unwrap();
    assert!(status.success());
    assert_eq!(files(&b), new, "rerun did not converge");
    assert_eq!(files(&a), new, "the source changed");
    // Every replaced old content is in b's version store or b still has it.
    let out = ferry_cmd(&home)
        .args(["sync", "--json"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["copied"], 0,
        "second run after convergence copied again: {v}"
    );
    let mut kept = std::collections::HashSet::new();
    let versions = b.join(".ferry/versions");
    let mut stack = vec![versions];
    let old_set: std::collections::HashSet<&Vec<u8>> = old.values().collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                kept.insert(std::fs::read(&p).unwrap());
            }
        }
    }
    let missing = old_set.iter().filter(|c| !kept.contains(**c)).count();
    assert_eq!(
        missing, 0,
        "overwritten old contents missing from the version store"
    );
}
