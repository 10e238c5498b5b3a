//! One behaviour suite for every `MetaStore`, run against SQLite and a real
//! PostgreSQL. Each run gets two handles on one database, as two hub nodes would.

mod common;

use std::sync::Arc;

use ferry_hub::{
    AppendOutcome, CasOutcome, CompactOutcome, DeviceRecord, Epoch, LogRecord, ManifestHead,
    MetaStore, ObjectId, ObjectState, PostgresMeta, ShareId, SlotRecord, SqliteMeta,
};

fn device(id: &str, recipient: &str) -> DeviceRecord {
    DeviceRecord {
        device_id: id.into(),
        recipient: recipient.into(),
    }
}

fn slot(label: &str, bytes: &[u8]) -> SlotRecord {
    SlotRecord {
        label: label.into(),
        slot: bytes.to_vec(),
    }
}

async fn behaves_like_a_meta_store<S: MetaStore + 'static>(a: Arc<S>, b: Arc<S>) {
    let share: ShareId = "s1".parse().unwrap();
    let other: ShareId = "s2".parse().unwrap();

    // Devices.
    assert_eq!(a.change_counter(&share).await.unwrap(), 0);
    a.add_device(&share, &device("dev-b", "age1b"))
        .await
        .unwrap();
    a.add_device(&share, &device("dev-a", "age1a"))
        .await
        .unwrap();
    a.add_device(&share, &device("dev-a", "age1a2"))
        .await
        .unwrap();
    assert_eq!(
        b.devices(&share).await.unwrap(),
        vec![device("dev-a", "age1a2"), device("dev-b", "age1b")]
    );
    assert!(b.devices(&other).await.unwrap().is_empty());
    assert_eq!(b.change_counter(&share).await.unwrap(), 3);
    assert!(b.remove_device(&share, "dev-b").await.unwrap());
    assert!(!a.remove_device(&share, "dev-b").await.unwrap());
    assert_eq!(
        a.devices(&share).await.unwrap(),
        vec![device("dev-a", "age1a2")]
    );
    assert_eq!(
        a.change_counter(&share).await.unwrap(),
        4,
        "a no-op removal is no change"
    );

    // Key slots per epoch.
    assert_eq!(a.latest_epoch(&share).await.unwrap(), None);
    a.put_key_slots(
        &share,
        Epoch(1),
        &[slot("dev-a", b"1a"), slot("passphrase", b"1p")],
    )
    .await
    .unwrap();
    a.put_key_slots(&share, Epoch(2), &[slot("dev-a", b"2a")])
        .await
        .unwrap();
    b.put_key_slots(
        &share,
        Epoch(2),
        &[slot("dev-c", b"2c"), slot("dev-a", b"2a'")],
    )
    .await
    .unwrap();
    assert_eq!(b.latest_epoch(&share).await.unwrap(), Some(Epoch(2)));
    assert_eq!(
        a.key_slots(&share, Epoch(2)).await.unwrap(),
        vec![slot("dev-a", b"2a'"), slot("dev-c", b"2c")]
    );
    assert_eq!(
        a.key_slots(&share, Epoch(1)).await.unwrap(),
        vec![slot("dev-a", b"1a"), slot("passphrase", b"1p")]
    );
    assert!(a.key_slots(&other, Epoch(1)).await.unwrap().is_empty());
    assert_eq!(a.change_counter(&share).await.unwrap(), 7);

    // Manifest heads: compare-and-swap.
    assert_eq!(a.manifest_head(&share).await.unwrap(), None);
    assert_eq!(
        a.swap_manifest_head(&share, 0, b"m1").await.unwrap(),
        CasOutcome::Swapped { version: 1 }
    );
    assert_eq!(
        b.swap_manifest_head(&share, 0, b"stale").await.unwrap(),
        CasOutcome::Conflict { current: 1 }
    );
    assert_eq!(
        b.swap_manifest_head(&share, 1, b"m2").await.unwrap(),
        CasOutcome::Swapped { version: 2 }
    );
    assert_eq!(
        a.swap_manifest_head(&share, 1, b"stale").await.unwrap(),
        CasOutcome::Conflict { current: 2 }
    );
    assert_eq!(
        a.swap_manifest_head(&share, 5, b"ahead").await.unwrap(),
        CasOutcome::Conflict { current: 2 }
    );
    assert_eq!(
        a.manifest_head(&share).await.unwrap(),
        Some(ManifestHead {
            version: 2,
            manifest: b"m2".to_vec()
        })
    );
    assert_eq!(a.manifest_head(&other).await.unwrap(), None);
    assert_eq!(
        a.swap_manifest_head(&other, 2, b"x").await.unwrap(),
        CasOutcome::Conflict { current: 0 }
    );
    // Two successful swaps counted; conflicts change nothing.
    assert_eq!(b.change_counter(&share).await.unwrap(), 9);
    assert_eq!(b.change_counter(&other).await.unwrap(), 0);

    // Two nodes racing from the same version, many times: exactly one wins each round.
    let race: ShareId = "race".parse().unwrap();
    for round in 0..30u64 {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for (node, store) in [(0u8, a.clone()), (1u8, b.clone())] {
            let (barrier, race) = (barrier.clone(), race.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let manifest = [node; 4];
                store.swap_manifest_head(&race, round, &manifest).await
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap().unwrap());
        }
        let winners: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, CasOutcome::Swapped { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        let loser = 1 - winners[0];
        assert_eq!(
            outcomes[winners[0]],
            CasOutcome::Swapped { version: round + 1 }
        );
        assert_eq!(outcomes[loser], CasOutcome::Conflict { current: round + 1 });
        // The head holds the winner's manifest, not a mix.
        let head = a.manifest_head(&race).await.unwrap().unwrap();
        assert_eq!(head.version, round + 1);
        assert_eq!(head.manifest, vec![winners[0] as u8; 4]);
    }
    assert_eq!(a.change_counter(&race).await.unwrap(), 30);

    behaves_like_a_log_store(&*a, &*b).await;
}

/// Admission, membership lookups and per-device logs.
async fn behaves_like_a_log_store<S: MetaStore>(a: &S, b: &S) {
    let share: ShareId = "logs".parse().unwrap();
    assert!(!a.is_allowed("dev-x").await.unwrap());
    a.allow_device("dev-x").await.unwrap();
    a.allow_device("dev-x").await.unwrap();
    assert!(b.is_allowed("dev-x").await.unwrap());
    assert!(!b.is_allowed("dev-y").await.unwrap());

    a.add_device(&share, &device("dev-x", "")).await.unwrap();
    let shares = b.member_shares("dev-x").await.unwrap();
    assert_eq!(shares, vec![share.clone()]);
    assert!(b.member_shares("dev-y").await.unwrap().is_empty());

    // A log starts at 0; the first record may be empty (0, 0).
    assert_eq!(
        a.append_log(&share, "dev-x", 3, 5, b"no").await.unwrap(),
        AppendOutcome::Conflict { head: 0 }
    );
    assert_eq!(
        a.append_log(&share, "dev-x", 0, 0, b"empty").await.unwrap(),
        AppendOutcome::Appended
    );
    assert_eq!(
        b.append_log(&share, "dev-x", 0, 0, b"again").await.unwrap(),
        AppendOutcome::Conflict { head: 0 },
        "an empty record only opens a log"
    );
    assert_eq!(
        b.append_log(&share, "dev-x", 0, 7, b"one").await.unwrap(),
        AppendOutcome::Appended
    );
    assert_eq!(
        a.append_log(&share, "dev-x", 0, 9, b"stale").await.unwrap(),
        AppendOutcome::Conflict { head: 7 }
    );
    assert_eq!(
        a.append_log(&share, "dev-x", 7, 12, b"two").await.unwrap(),
        AppendOutcome::Appended
    );
    assert_eq!(
        a.append_log(&share, "dev-z", 0, 4, b"z").await.unwrap(),
        AppendOutcome::Appended
    );
    let all = b.log_after(&share, "dev-x", 0, 100).await.unwrap();
    let ranges: Vec<(u64, u64, Vec<u8>)> = all
        .into_iter()
        .map(|r| (r.after, r.upto, r.batch))
        .collect();
    assert_eq!(
        ranges,
        vec![
            (0, 0, b"empty".to_vec()),
            (0, 7, b"one".to_vec()),
            (7, 12, b"two".to_vec())
        ]
    );
    let later = b.log_after(&share, "dev-x", 7, 100).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].batch, b"two".to_vec());
    assert_eq!(b.log_after(&share, "dev-x", 0, 1).await.unwrap().len(), 1);
    assert!(b
        .log_after(&share, "dev-x", 12, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.log_heads(&share).await.unwrap(),
        vec![("dev-x".to_string(), 12), ("dev-z".to_string(), 4)]
    );
    let other: ShareId = "other-logs".parse().unwrap();
    assert!(b.log_heads(&other).await.unwrap().is_empty());
}

/// Removals are remembered; a new epoch starts once, right after the latest, and of
/// two handles racing to start it exactly one wins with all its slots.
async fn behaves_like_an_epoch_store<S: MetaStore + 'static>(a: Arc<S>, b: Arc<S>) {
    let share: ShareId = "s3".parse().unwrap();
    a.add_device(&share, &device("dev-x", "age1x"))
        .await
        .unwrap();
    assert!(a.removed_devices(&share).await.unwrap().is_empty());
    assert!(b.remove_device(&share, "dev-x").await.unwrap());
    assert!(!b.remove_device(&share, "dev-y").await.unwrap());
    assert_eq!(
        a.removed_devices(&share).await.unwrap(),
        vec!["dev-x".to_string(), "dev-y".to_string()]
    );
    assert!(a.devices(&share).await.unwrap().is_empty());

    assert_eq!(a.restore_verifier(&share).await.unwrap(), None);
    a.set_restore_verifier(&share, Some(b"v1")).await.unwrap();
    b.set_restore_verifier(&share, Some(b"v2")).await.unwrap();
    assert_eq!(
        a.restore_verifier(&share).await.unwrap(),
        Some(b"v2".to_vec())
    );
    b.set_restore_verifier(&share, None).await.unwrap();
    assert_eq!(a.restore_verifier(&share).await.unwrap(), None);

    assert!(!a
        .create_epoch(&share, Epoch(2), &[slot("dev-a", b"2")])
        .await
        .unwrap());
    assert!(a
        .create_epoch(&share, Epoch(1), &[slot("dev-a", b"1")])
        .await
        .unwrap());
    assert!(!b
        .create_epoch(&share, Epoch(1), &[slot("dev-b", b"1'")])
        .await
        .unwrap());
    assert_eq!(
        a.key_slots(&share, Epoch(1)).await.unwrap(),
        vec![slot("dev-a", b"1")]
    );
    for round in 2..12u32 {
        let (a2, b2, s2, s3) = (a.clone(), b.clone(), share.clone(), share.clone());
        let one = tokio::spawn(async move {
            a2.create_epoch(
                &s2,
                Epoch(round),
                &[slot("dev-a", b"a"), slot("dev-c", b"a")],
            )
            .await
            .unwrap()
        });
        let two = tokio::spawn(async move {
            b2.create_epoch(
                &s3,
                Epoch(round),
                &[slot("dev-a", b"b"), slot("dev-c", b"b")],
            )
            .await
            .unwrap()
        });
        let (one, two) = (one.await.unwrap(), two.await.unwrap());
        assert!(one != two, "round {round}: exactly one rotation wins");
        let won: &[u8] = if one { b"a" } else { b"b" };
        assert_eq!(
            a.key_slots(&share, Epoch(round)).await.unwrap(),
            vec![slot("dev-a", won), slot("dev-c", won)],
            "round {round}: the winner's slots only"
        );
        assert_eq!(b.latest_epoch(&share).await.unwrap(), Some(Epoch(round)));
    }
}

/// Stored bytes per share: a reservation past the limit counts nothing; releases take
/// bytes back; handles racing to reserve never pass the limit together.
fn oid(n: u8) -> ObjectId {
    ObjectId::from_bytes([n; 32])
}

fn rec(after: u64, upto: u64, len: usize) -> LogRecord {
    LogRecord {
        after,
        upto,
        batch: vec![7; len],
    }
}

/// Compaction replaces a device's own records, references decide what garbage
/// collection may take, and a touch after a member's references keeps an object.
async fn behaves_like_a_gc_store<S: MetaStore + 'static>(a: Arc<S>, b: Arc<S>) {
    let share: ShareId = "s5".parse().unwrap();
    for d in ["gc-a", "gc-b"] {
        a.add_device(&share, &device(d, "age1x")).await.unwrap();
    }
    // Four objects stored at t = 1000, 100 bytes each.
    for n in 1..=4 {
        assert!(a.reserve_bytes(&share, 100, None).await.unwrap());
        assert!(a.record_object(&share, &oid(n), 100, 1000).await.unwrap());
    }
    assert!(
        !b.record_object(&share, &oid(1), 100, 1000).await.unwrap(),
        "known"
    );
    // Logs: A has three records, B one.
    for (after, upto) in [(0, 2), (2, 5), (5, 9)] {
        assert_eq!(
            a.append_log(&share, "gc-a", after, upto, &[1; 50])
                .await
                .unwrap(),
            AppendOutcome::Appended
        );
        assert!(a.reserve_bytes(&share, 50, None).await.unwrap());
    }
    a.append_log(&share, "gc-b", 0, 3, &[1; 50]).await.unwrap();
    assert!(a.reserve_bytes(&share, 50, None).await.unwrap());
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 600);

    // No references yet: nothing is collected, and the plan says who is awaited.
    let plan = b.doom_unreferenced(&share, 1_000_000).await.unwrap();
    assert_eq!(plan.blocked_by, vec!["gc-a".to_string(), "gc-b".into()]);
    assert!(plan.doomed.is_empty());

    // A compacts (0, 5] into one record referencing object 1; the record after 5 stays.
    assert!(a.reserve_bytes(&share, 30, None).await.unwrap());
    a.stage_compaction(&share, "gc-a", true, &[rec(0, 5, 30)], &[oid(1)])
        .await
        .unwrap();
    // A gap, or an end that is not a record boundary, is refused and changes nothing.
    assert!(matches!(
        b.commit_compaction(&share, "gc-a", 4, 2000).await.unwrap(),
        CompactOutcome::Refused(_)
    ));
    assert!(matches!(
        b.commit_compaction(&share, "gc-a", 9, 2000).await.unwrap(),
        CompactOutcome::Refused(_)
    ));
    assert_eq!(a.log_after(&share, "gc-a", 0, 10).await.unwrap().len(), 3);
    assert_eq!(
        b.commit_compaction(&share, "gc-a", 5, 2000).await.unwrap(),
        CompactOutcome::Compacted { freed: 100 }
    );
    let log = a.log_after(&share, "gc-a", 0, 10).await.unwrap();
    assert_eq!(
        log.iter()
            .map(|r| (r.after, r.upto, r.batch.len()))
            .collect::<Vec<_>>(),
        vec![(0, 5, 30), (5, 9, 50)]
    );
    assert_eq!(a.log_after(&share, "gc-a", 3, 10).await.unwrap().len(), 2);
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 530);
    // A staged compaction started over drops what was staged (and its bytes).
    assert!(a.reserve_bytes(&share, 20, None).await.unwrap());
    a.stage_compaction(&share, "gc-b", true, &[rec(0, 3, 20)], &[])
        .await
        .unwrap();
    assert_eq!(
        b.stage_compaction(&share, "gc-b", true, &[], &[])
            .await
            .unwrap(),
        20
    );
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 530);

    // Still waiting for B.
    let plan = b.doom_unreferenced(&share, 1_000_000).await.unwrap();
    assert_eq!(plan.blocked_by, vec!["gc-b".to_string()]);
    assert!(plan.doomed.is_empty());
    // B references object 2, at t = 3000.
    assert!(a.reserve_bytes(&share, 50, None).await.unwrap());
    b.stage_compaction(&share, "gc-b", true, &[rec(0, 3, 50)], &[oid(2)])
        .await
        .unwrap();
    assert_eq!(
        a.commit_compaction(&share, "gc-b", 3, 3000).await.unwrap(),
        CompactOutcome::Compacted { freed: 50 }
    );
    // Object 3 is touched (an uploader was told the hub has it) after A's references
    // (2000): kept, whatever the cutoff. Object 4 was last touched before both.
    assert_eq!(
        a.touch_objects(&share, &[oid(3), oid(9)], 2500)
            .await
            .unwrap(),
        vec![ObjectState::Present, ObjectState::Absent]
    );
    // The grace period: nothing older than the cutoff of 500.
    assert!(b
        .doom_unreferenced(&share, 500)
        .await
        .unwrap()
        .doomed
        .is_empty());
    let plan = b.doom_unreferenced(&share, 1_000_000).await.unwrap();
    assert!(plan.blocked_by.is_empty());
    assert_eq!(plan.doomed, vec![(oid(4), 100)]);
    // A doomed object is not reported present, and recording it again does not save it.
    assert_eq!(
        a.touch_objects(&share, &[oid(4), oid(1)], 4000)
            .await
            .unwrap(),
        vec![ObjectState::Doomed, ObjectState::Present]
    );
    assert!(!a.record_object(&share, &oid(4), 100, 4000).await.unwrap());
    assert_eq!(
        b.doom_unreferenced(&share, 1_000_000).await.unwrap().doomed,
        vec![(oid(4), 100)],
        "doomed until forgotten (an interrupted run finishes it next time)"
    );
    assert_eq!(a.forget_objects(&share, &[oid(4)]).await.unwrap(), 100);
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 430);
    assert_eq!(
        a.touch_objects(&share, &[oid(4)], 5000).await.unwrap(),
        vec![ObjectState::Absent],
        "gone: an uploader stores it again"
    );
    // A member removed: its references no longer keep anything.
    a.remove_device(&share, "gc-b").await.unwrap();
    let plan = b.doom_unreferenced(&share, 1_000_000).await.unwrap();
    assert_eq!(
        plan.doomed.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![oid(2)],
        "object 3 was touched after A's references; object 1 is A's"
    );
    a.forget_objects(&share, &[oid(2)]).await.unwrap();

    // The race: collections and uploaders asking about the same objects at once, on
    // two handles. An object reported present is never doomed afterwards (the
    // uploader's record will reference it); one doomed is never reported present.
    let race: ShareId = "s6".parse().unwrap();
    a.add_device(&race, &device("gc-a", "age1x")).await.unwrap();
    a.append_log(&race, "gc-a", 0, 1, &[1; 10]).await.unwrap();
    a.stage_compaction(&race, "gc-a", true, &[rec(0, 1, 10)], &[])
        .await
        .unwrap();
    a.commit_compaction(&race, "gc-a", 1, 10_000).await.unwrap();
    for round in 0..30u8 {
        let id = oid(100 + round);
        a.record_object(&race, &id, 10, 5_000).await.unwrap();
        let (ga, ub) = (a.clone(), b.clone());
        let (r1, r2) = (race.clone(), race.clone());
        // The uploader's touch is dated after the collection's reference date, as a
        // device asks after its last compaction.
        let (uploader, collector) = if round % 2 == 0 { (ub, ga) } else { (ga, ub) };
        let touch =
            tokio::spawn(
                async move { uploader.touch_objects(&r1, &[id], 20_000).await.unwrap()[0] },
            );
        let gc =
            tokio::spawn(async move { collector.doom_unreferenced(&r2, 1_000_000).await.unwrap() });
        let (told, plan) = (touch.await.unwrap(), gc.await.unwrap());
        let doomed = plan.doomed.iter().any(|d| d.0 == id);
        match told {
            ObjectState::Present => assert!(!doomed, "round {round}: present and doomed"),
            ObjectState::Doomed => assert!(doomed, "round {round}"),
            ObjectState::Absent => panic!("round {round}: the row vanished"),
        }
        // Either way, after this the object is present for a touch after it, or gone.
        let later = b.touch_objects(&race, &[id], 20_001).await.unwrap()[0];
        assert_eq!(later == ObjectState::Present, !doomed, "round {round}");
        a.forget_objects(&race, &[id]).await.unwrap();
    }
}

async fn behaves_like_a_quota_store<S: MetaStore + 'static>(a: Arc<S>, b: Arc<S>) {
    let share: ShareId = "s4".parse().unwrap();
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 0);
    assert!(!a.reserve_bytes(&share, 101, Some(100)).await.unwrap());
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 0);
    assert!(a.reserve_bytes(&share, 60, Some(100)).await.unwrap());
    assert!(!b.reserve_bytes(&share, 41, Some(100)).await.unwrap());
    assert!(b.reserve_bytes(&share, 40, Some(100)).await.unwrap());
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 100);
    assert!(b.reserve_bytes(&share, 5, None).await.unwrap(), "no limit");
    b.release_bytes(&share, 45).await.unwrap();
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 60);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let share = share.clone();
        tasks.push(tokio::spawn(async move {
            s.reserve_bytes(&share, 7, Some(200)).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += u64::from(t.await.unwrap());
    }
    assert_eq!(won, (200 - 60) / 7, "exactly as many as fit");
    assert_eq!(a.stored_bytes(&share).await.unwrap(), 60 + 7 * won);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let a = Arc::new(SqliteMeta::open(&path).unwrap());
    let b = Arc::new(SqliteMeta::open(&path).unwrap());
    behaves_like_a_meta_store(a.clone(), b.clone()).await;
    behaves_like_an_epoch_store(a.clone(), b.clone()).await;
    behaves_like_a_quota_store(a.clone(), b.clone()).await;
    behaves_like_a_gc_store(a, b).await;
    // Reopened, everything is still there.
    let reopened = SqliteMeta::open(&path).unwrap();
    let share: ShareId = "s1".parse().unwrap();
    assert_eq!(
        reopened
            .manifest_head(&share)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let pg = common::Postgres::start();
    let a = Arc::new(PostgresMeta::connect(&pg.config()).await.unwrap());
    let b = Arc::new(PostgresMeta::connect(&pg.config()).await.unwrap());
    behaves_like_a_meta_store(a.clone(), b.clone()).await;
    behaves_like_an_epoch_store(a.clone(), b.clone()).await;
    behaves_like_a_quota_store(a.clone(), b.clone()).await;
    behaves_like_a_gc_store(a, b).await;
    let reconnected = PostgresMeta::connect(&pg.config()).await.unwrap();
    let share: ShareId = "s1".parse().unwrap();
    assert_eq!(
        reconnected
            .manifest_head(&share)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}
