//! One behaviour suite for every `MetaStore`, run against SQLite and a real
//! PostgreSQL. Each run gets two handles on one database, as two hub nodes would.

mod common;

use std::sync::Arc;

use ferry_hub::{
    AppendOutcome, CasOutcome, DeviceRecord, Epoch, ManifestHead, MetaStore, PostgresMeta, ShareId,
    SlotRecord, SqliteMeta,
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
    behaves_like_a_quota_store(a, b).await;
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
    behaves_like_a_quota_store(a, b).await;
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
