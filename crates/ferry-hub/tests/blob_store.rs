//! The blob store against a local directory and against a real S3-compatible server
//! (moto): the same checks for both.

mod common;

use ferry_hub::{BlobStore, Epoch, ObjectId, PutOutcome, ShareId, ShareKeys, StoreError};

async fn behaves_like_a_blob_store(store: &BlobStore) {
    let share: ShareId = "share-1".parse().unwrap();
    let other: ShareId = "share_2".parse().unwrap();
    let keys = ShareKeys::generate(&share, Epoch::FIRST).unwrap();
    let chunk = b"some chunk".to_vec();
    let id = keys.object_id(&chunk);
    let sealed = keys.seal_object(&id, &chunk).unwrap();

    assert!(!store.exists(&share, &id).await.unwrap());
    assert_eq!(store.get(&share, &id).await.unwrap(), None);
    assert_eq!(
        store.put(&share, &id, sealed.clone()).await.unwrap(),
        PutOutcome::Stored
    );
    assert!(store.exists(&share, &id).await.unwrap());
    assert!(!store.exists(&other, &id).await.unwrap());

    // Create-only: the same chunk sealed again (other random keys, other bytes) is
    // "already there", and the first bytes stay.
    let resealed = keys.seal_object(&id, &chunk).unwrap();
    assert_ne!(resealed, sealed);
    assert_eq!(
        store.put(&share, &id, resealed).await.unwrap(),
        PutOutcome::AlreadyPresent
    );
    let stored = store.get(&share, &id).await.unwrap().unwrap();
    assert_eq!(stored, sealed);
    assert_eq!(keys.open_object(&id, &stored).unwrap(), chunk);

    // Two nodes putting one ID at once (each sealed it with its own random keys):
    // exactly one put stores, and the blob is that one's bytes, whole.
    for round in 0..10u8 {
        let chunk = vec![round; 5000];
        let id = keys.object_id(&chunk);
        let mut puts = Vec::new();
        for _ in 0..2 {
            let (store, share, sealed) = (
                store.clone(),
                share.clone(),
                keys.seal_object(&id, &chunk).unwrap(),
            );
            puts.push(tokio::spawn(async move {
                let outcome = store.put(&share, &id, sealed.clone()).await.unwrap();
                (outcome, sealed)
            }));
        }
        let mut stored = Vec::new();
        for put in puts {
            let (outcome, sealed) = put.await.unwrap();
            if outcome == PutOutcome::Stored {
                stored.push(sealed);
            }
        }
        assert_eq!(stored.len(), 1, "round {round}");
        assert_eq!(store.get(&share, &id).await.unwrap().unwrap(), stored[0]);
        store.delete(&share, &id).await.unwrap();
    }

    // Listing by prefix.
    let mut ids = vec![id];
    for i in 0..20u8 {
        let chunk = vec![i; 100];
        let id = keys.object_id(&chunk);
        store
            .put(&share, &id, keys.seal_object(&id, &chunk).unwrap())
            .await
            .unwrap();
        ids.push(id);
    }
    ids.sort();
    assert_eq!(store.list(&share, "").await.unwrap(), ids);
    assert_eq!(
        store.list(&other, "").await.unwrap(),
        Vec::<ObjectId>::new()
    );
    for prefix_len in [1, 2, 3, 64] {
        let prefix = &ids[5].to_hex()[..prefix_len];
        let expected: Vec<ObjectId> = ids
            .iter()
            .filter(|id| id.to_hex().starts_with(prefix))
            .copied()
            .collect();
        assert!(expected.contains(&ids[5]));
        assert_eq!(
            store.list(&share, prefix).await.unwrap(),
            expected,
            "{prefix}"
        );
    }
    for bad in ["A", "g", "../", &"0".repeat(65)] {
        assert!(matches!(
            store.list(&share, bad).await,
            Err(StoreError::BadPrefix(_))
        ));
    }

    // Delete (garbage collection), idempotent.
    store.delete(&share, &id).await.unwrap();
    assert!(!store.exists(&share, &id).await.unwrap());
    store.delete(&share, &id).await.unwrap();
    assert_eq!(store.list(&share, "").await.unwrap().len(), 20);
    // Once gone, the ID can be stored again.
    assert_eq!(
        store.put(&share, &id, sealed).await.unwrap(),
        PutOutcome::Stored
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path().join("blobs").to_str().unwrap()).unwrap();
    behaves_like_a_blob_store(&store).await;
    // Blobs are files under the directory, in the documented layout.
    let share_dir = dir.path().join("blobs/shares/share-1/objects");
    let fanouts = std::fs::read_dir(&share_dir).unwrap().count();
    assert!(fanouts > 1, "{fanouts} fan-out directories");

    let url = format!("file://{}", dir.path().join("blobs").display());
    let again = BlobStore::open(&url).unwrap();
    assert_eq!(
        again
            .list(&"share-1".parse().unwrap(), "")
            .await
            .unwrap()
            .len(),
        21
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_compatible_server() {
    let moto = common::Moto::start("ferry-hub-test");
    let store = BlobStore::open(&moto.url("ferry-hub-test")).unwrap();
    behaves_like_a_blob_store(&store).await;
}

#[test]
fn bad_locations_are_refused() {
    for location in [
        "http://example.com/x",
        "s3://",
        "s3://bucket/some/path",
        "s3://bucket?no_such_option=1",
    ] {
        assert!(
            matches!(
                BlobStore::open(location),
                Err(StoreError::BadLocation { .. })
            ),
            "{location}"
        );
    }
    for share in ["", "a/b", "..", "x y", &"a".repeat(65)] {
        assert!(share.parse::<ShareId>().is_err(), "{share:?}");
    }
}
