//! A location in two conduits: a change that arrives through one conduit must reach the
//! other, even though the other converged before and nothing changed on its far side
//! (the unchanged-conduit short cut must see the shared location's new sequence).

use ferry_core::NoProgress;
use ferry_core::{sync, SyncOptions};

mod common;

#[test]
fn change_through_one_conduit_reaches_the_other() {
    let (_tmp, [a, b, c], mut index) = common::folders(["A", "B", "C"]);
    let opts = SyncOptions::default();
    std::fs::write(a.join("x"), "one").unwrap();
    for (p, q) in [(&a, &b), (&a, &c), (&a, &b), (&a, &c)] {
        let out = sync(&mut index, p, q, &opts, &NoProgress).unwrap();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
    }
    // Both conduits converged. An edit on C reaches A through A⇄C…
    std::fs::write(c.join("x"), "two, from c").unwrap();
    sync(&mut index, &a, &c, &opts, &NoProgress).unwrap();
    assert_eq!(std::fs::read_to_string(a.join("x")).unwrap(), "two, from c");
    // …and then B, although nothing changed on B since A⇄B converged.
    let out = sync(&mut index, &a, &b, &opts, &NoProgress).unwrap();
    assert_eq!(out.stats.files_copied, 1);
    assert_eq!(std::fs::read_to_string(b.join("x")).unwrap(), "two, from c");
}
