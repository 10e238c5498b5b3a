//! The result of running a command, with assertions that show its output on failure.

use serde_json::Value;
use std::process::{Command, Output};

/// What one command run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Stdout as one JSON document (panics, showing the output, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Run {
    /// Stdout as one of ferry's JSON documents: JSON carrying its `schema_version`.
    pub fn document(&self) -> Value {
        let v = self.json();
        assert_eq!(v["schema_version"], 1, "no schema version: {v:#}");
        v
    }
}

/// Runs `cmd` to its end and keeps what it printed.
pub fn finish(cmd: &mut Command) -> Run {
    Run::from(cmd.output().expect("the command could not be started"))
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out
                .status
                .code()
                .expect("the command was killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
