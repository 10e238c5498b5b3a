//! End-to-end encryption: key slots, epochs, object IDs, the sealed format, manifests
//! and the keyed chunker.

use ferry_hub::{
    CryptoError, DeviceIdentity, DeviceRecipient, Epoch, KeyRing, KeySlot, KeyedChunker, ObjectId,
    PassphraseParams, ShareId, ShareKeys, SEALED_HEADER_LEN, SEALED_OVERHEAD,
};
use proptest::prelude::*;

/// Cheap Argon2id so the tests stay fast; the default is tested for its values only.
const CHEAP: PassphraseParams = PassphraseParams {
    memory_kib: 256,
    passes: 1,
    lanes: 1,
};

fn share() -> ShareId {
    "photos".parse().unwrap()
}

/// Fresh keys of share `photos`, epoch 1 (each call another root key).
fn keys() -> ShareKeys {
    ShareKeys::generate(&share(), Epoch::FIRST).unwrap()
}

/// Bytes that do not compress (a BLAKE3 XOF stream).
fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut out);
    out
}

#[test]
fn device_keys_round_trip_as_age_bech32_strings() {
    let identity = DeviceIdentity::generate();
    let secret = identity.to_secret_string();
    assert!(secret.starts_with("AGE-SECRET-KEY-1"), "{}", &secret[..16]);
    let recipient = identity.recipient().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");

    let again: DeviceIdentity = secret.parse().unwrap();
    assert_eq!(again.recipient(), identity.recipient());
    let parsed: DeviceRecipient = recipient.parse().unwrap();
    assert_eq!(parsed, identity.recipient());
    assert!(!format!("{identity:?}").contains("SECRET"));

    assert!(matches!(
        "age1nonsense".parse::<DeviceRecipient>(),
        Err(CryptoError::BadDeviceKey(_))
    ));
    assert!(matches!(
        "AGE-SECRET-KEY-1XYZ".parse::<DeviceIdentity>(),
        Err(CryptoError::BadDeviceKey(_))
    ));
}

#[test]
fn a_device_slot_opens_only_with_that_device() {
    let keys = keys();
    let (alice, mallory) = (DeviceIdentity::generate(), DeviceIdentity::generate());
    let slot = keys.slot_for_device(&alice.recipient()).unwrap();
    let stored = KeySlot::from_bytes(&slot.to_bytes()).unwrap();
    assert_eq!(stored, slot);

    let opened = stored
        .open_with_device(&share(), Epoch::FIRST, &alice)
        .unwrap();
    // Same root key → same sub-keys: equal IDs, and each opens the other's objects.
    assert_eq!(opened.object_id(b"chunk"), keys.object_id(b"chunk"));
    let id = keys.object_id(b"chunk");
    let sealed = keys.seal_object(&id, b"chunk").unwrap();
    assert_eq!(opened.open_object(&id, &sealed).unwrap(), b"chunk");

    assert_eq!(
        stored
            .open_with_device(&share(), Epoch::FIRST, &mallory)
            .unwrap_err(),
        CryptoError::NotForThisDevice
    );
    assert!(matches!(
        stored
            .open_with_passphrase(&share(), Epoch::FIRST, "x")
            .unwrap_err(),
        CryptoError::WrongSlotKind { .. }
    ));
}

#[test]
fn a_slot_served_for_another_epoch_is_refused() {
    let alice = DeviceIdentity::generate();
    let slot = keys().slot_for_device(&alice.recipient()).unwrap();
    assert_eq!(
        slot.open_with_device(&share(), Epoch(2), &alice)
            .unwrap_err(),
        CryptoError::EpochMismatch {
            sealed: Epoch(1),
            keys: Epoch(2)
        }
    );
    let slot = keys().slot_for_passphrase("pw", CHEAP).unwrap();
    assert!(matches!(
        slot.open_with_passphrase(&share(), Epoch(2), "pw")
            .unwrap_err(),
        CryptoError::EpochMismatch { .. }
    ));
}

#[test]
fn a_slot_served_for_another_share_is_refused() {
    // A device in two shares: a hub handing it one share's slot as the other's is caught.
    let alice = DeviceIdentity::generate();
    let music: ShareId = "music".parse().unwrap();
    let slot = ShareKeys::generate(&music, Epoch::FIRST)
        .unwrap()
        .slot_for_device(&alice.recipient())
        .unwrap();
    assert!(slot.open_with_device(&music, Epoch::FIRST, &alice).is_ok());
    assert_eq!(
        slot.open_with_device(&share(), Epoch::FIRST, &alice)
            .unwrap_err(),
        CryptoError::ShareMismatch {
            sealed: "music".into(),
            keys: "photos".into()
        }
    );
    let slot = keys().slot_for_passphrase("pw", CHEAP).unwrap();
    assert!(matches!(
        slot.open_with_passphrase(&music, Epoch::FIRST, "pw"),
        Err(CryptoError::ShareMismatch { .. })
    ));
}

#[test]
fn a_passphrase_slot_opens_with_the_passphrase_only() {
    let keys = keys();
    let slot = keys
        .slot_for_passphrase("correct horse battery staple", CHEAP)
        .unwrap();
    assert!(slot.is_passphrase());
    let bytes = slot.to_bytes();
    let stored = KeySlot::from_bytes(&bytes).unwrap();
    let opened = stored
        .open_with_passphrase(&share(), Epoch::FIRST, "correct horse battery staple")
        .unwrap();
    assert_eq!(opened.object_id(b"x"), keys.object_id(b"x"));
    assert_eq!(
        stored
            .open_with_passphrase(&share(), Epoch::FIRST, "correct horse battery stapler")
            .unwrap_err(),
        CryptoError::WrongPassphrase
    );

    // Salt and parameters are stored with the slot and authenticated: a store that
    // lowers the cost makes the slot unopenable rather than weaker.
    let mut cheaper = bytes.clone();
    cheaper[1..5].copy_from_slice(&128u32.to_be_bytes()); // memory_kib, was 256
    let cheaper = KeySlot::from_bytes(&cheaper).unwrap();
    assert_eq!(
        cheaper
            .open_with_passphrase(&share(), Epoch::FIRST, "correct horse battery staple")
            .unwrap_err(),
        CryptoError::WrongPassphrase
    );
    assert_eq!(
        PassphraseParams::default(),
        PassphraseParams {
            memory_kib: 65536,
            passes: 3,
            lanes: 1
        }
    );
}

#[test]
fn forged_passphrase_costs_are_refused_before_any_work() {
    let slot = keys().slot_for_passphrase("pw", CHEAP).unwrap();
    let mut bytes = slot.to_bytes();
    bytes[1..5].copy_from_slice(&u32::MAX.to_be_bytes()); // memory_kib
    let forged = KeySlot::from_bytes(&bytes).unwrap();
    assert!(matches!(
        forged
            .open_with_passphrase(&share(), Epoch::FIRST, "pw")
            .unwrap_err(),
        CryptoError::BadParams(_)
    ));
}

#[test]
fn garbage_slots_are_typed_errors() {
    assert!(matches!(
        KeySlot::from_bytes(&[]),
        Err(CryptoError::MalformedSlot(_))
    ));
    assert!(matches!(
        KeySlot::from_bytes(&[9, 1, 2]),
        Err(CryptoError::MalformedSlot(_))
    ));
    assert!(matches!(
        KeySlot::from_bytes(&[2, 1, 2]),
        Err(CryptoError::MalformedSlot(_))
    ));
    let junk = KeySlot::from_bytes(&[1, b'n', b'o']).unwrap();
    assert!(matches!(
        junk.open_with_device(&share(), Epoch::FIRST, &DeviceIdentity::generate()),
        Err(CryptoError::MalformedSlot(_))
    ));
}

#[test]
fn a_removed_device_cannot_open_the_new_epoch() {
    let (a, b, c) = (
        DeviceIdentity::generate(),
        DeviceIdentity::generate(),
        DeviceIdentity::generate(),
    );
    let epoch1 = keys();
    let old_slots: Vec<KeySlot> = [&a, &b, &c]
        .iter()
        .map(|d| epoch1.slot_for_device(&d.recipient()).unwrap())
        .collect();
    let old_id = epoch1.object_id(b"before");
    let old_object = epoch1.seal_object(&old_id, b"before").unwrap();

    // C is removed: epoch 2, wrapped for A and B only.
    let (epoch2, slots) = epoch1.rotate(&[a.recipient(), b.recipient()]).unwrap();
    assert_eq!(epoch2.epoch(), Epoch(2));
    assert_eq!(slots.len(), 2);
    for slot in &slots {
        assert_eq!(
            slot.open_with_device(&share(), Epoch(2), &c).unwrap_err(),
            CryptoError::NotForThisDevice
        );
    }
    let a2 = slots[0].open_with_device(&share(), Epoch(2), &a).unwrap();
    let b2 = slots[1].open_with_device(&share(), Epoch(2), &b).unwrap();

    let new_id = a2.object_id(b"after");
    let new_object = a2.seal_object(&new_id, b"after").unwrap();
    assert_eq!(b2.open_object(&new_id, &new_object).unwrap(), b"after");

    // C still has epoch 1 (what it could read before), which does not open epoch 2.
    let c1 = old_slots[2]
        .open_with_device(&share(), Epoch::FIRST, &c)
        .unwrap();
    assert_eq!(
        c1.open_object(&new_id, &new_object).unwrap_err(),
        CryptoError::EpochMismatch {
            sealed: Epoch(2),
            keys: Epoch(1)
        }
    );
    // Nor do epoch-1 keys relabelled as epoch 2 (the data key does not unwrap).
    let mut relabelled = old_object.clone();
    relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        a2.open_object(&old_id, &relabelled).unwrap_err(),
        CryptoError::WrongKey
    );
    // And C cannot compute the new epoch's IDs for a chunk it knows.
    assert_ne!(c1.object_id(b"after"), new_id);

    // A member keeps both epochs: old objects open under epoch 1, new under epoch 2.
    let mut ring = KeyRing::new(share());
    let a1 = old_slots[0]
        .open_with_device(&share(), Epoch::FIRST, &a)
        .unwrap();
    ring.insert(a1).unwrap();
    ring.insert(a2).unwrap();
    assert_eq!(ring.current().unwrap().epoch(), Epoch(2));
    assert_eq!(ring.open_object(&old_id, &old_object).unwrap(), b"before");
    assert_eq!(ring.open_object(&new_id, &new_object).unwrap(), b"after");
    let mut only_new = KeyRing::new(share());
    only_new.insert(b2).unwrap();
    let music = ShareKeys::generate(&"music".parse().unwrap(), Epoch(3)).unwrap();
    assert!(matches!(
        only_new.insert(music),
        Err(CryptoError::ShareMismatch { .. })
    ));
    assert_eq!(
        only_new.open_object(&old_id, &old_object).unwrap_err(),
        CryptoError::UnknownEpoch(Epoch(1))
    );
}

#[test]
fn object_ids_dedup_within_a_share_and_are_unrelated_across_shares() {
    let share1 = keys();
    let share2 = ShareKeys::generate(&"music".parse().unwrap(), Epoch::FIRST).unwrap();
    let chunk = noise(1000, 1);
    assert_eq!(share1.object_id(&chunk), share1.object_id(&chunk));
    assert_eq!(
        share1.object_id(&chunk),
        share1.object_id_of_hash(blake3::hash(&chunk).as_bytes())
    );
    assert_ne!(share1.object_id(&chunk), share2.object_id(&chunk));
    assert_ne!(share1.object_id(&chunk), share1.object_id(&noise(1000, 2)));
    // Not the plaintext hash either: without the key an ID says nothing.
    assert_ne!(
        share1.object_id(&chunk).as_bytes(),
        blake3::hash(&chunk).as_bytes()
    );

    let id = share1.object_id(&chunk);
    assert_eq!(id.to_hex().parse::<ObjectId>().unwrap(), id);
    assert_eq!(
        id.to_hex().to_uppercase().parse::<ObjectId>().unwrap_err(),
        CryptoError::BadObjectId
    );
    assert!("abc".parse::<ObjectId>().is_err());
}

#[test]
fn the_header_layout_is_as_documented() {
    let keys = ShareKeys::generate(&share(), Epoch(0x0102_0304)).unwrap();
    let chunk = noise(500, 3);
    let id = keys.object_id(&chunk);
    let sealed = keys.seal_object(&id, &chunk).unwrap();
    assert_eq!(SEALED_HEADER_LEN, 102);
    assert_eq!(SEALED_OVERHEAD, 118);
    assert_eq!(sealed[0], 1, "format");
    assert_eq!(&sealed[1..5], &[1, 2, 3, 4], "epoch, big-endian");
    assert_eq!(sealed[5], 0, "incompressible: raw");
    assert_eq!(sealed.len(), 1024 + SEALED_OVERHEAD, "padded to 1 KiB");

    let text = b"hello hello hello hello hello hello hello hello hello hello".repeat(100);
    let id = keys.object_id(&text);
    let sealed = keys.seal_object(&id, &text).unwrap();
    assert_eq!(sealed[5], 1, "compressible: zstd");
    assert!(sealed.len() < text.len() / 4);
    assert_eq!(keys.open_object(&id, &sealed).unwrap(), text);

    // Fresh data key and nonces per seal: the same chunk never seals to the same bytes.
    assert_ne!(keys.seal_object(&id, &text).unwrap(), sealed);
    assert_eq!(
        keys.seal_object(&id, b"").unwrap().len(),
        1024 + SEALED_OVERHEAD
    );
}

#[test]
fn sealed_sizes_are_padded() {
    let keys = keys();
    let sealed_len = |len: usize| {
        let chunk = noise(len, (len % 251) as u8);
        let sealed = keys.seal_object(&keys.object_id(&chunk), &chunk).unwrap();
        sealed.len() - SEALED_OVERHEAD
    };
    // Everything up to 1 KiB (with the 4-byte length) looks the same.
    for len in [0, 1, 100, 700, 1020] {
        assert_eq!(sealed_len(len), 1024, "{len}");
    }
    // Larger sizes fall into few buckets, never more than 12 % above the payload.
    let mut sizes = std::collections::BTreeSet::new();
    for len in (60_000..70_000).step_by(97) {
        let padded = sealed_len(len);
        assert!(
            padded >= len + 4 && padded * 100 <= (len + 4) * 112,
            "{len} → {padded}"
        );
        sizes.insert(padded);
    }
    assert!(
        sizes.len() <= 12,
        "{} distinct sizes for 104 lengths",
        sizes.len()
    );
}

#[test]
fn opening_reports_each_kind_of_damage() {
    let keys = keys();
    let chunk = noise(3000, 4);
    let id = keys.object_id(&chunk);
    let sealed = keys.seal_object(&id, &chunk).unwrap();

    for len in 0..SEALED_OVERHEAD {
        assert_eq!(
            keys.open_object(&id, &sealed[..len]).unwrap_err(),
            CryptoError::Truncated,
            "{len} bytes"
        );
    }
    assert_eq!(
        keys.open_object(&id, &sealed[..sealed.len() - 1])
            .unwrap_err(),
        CryptoError::Tampered
    );

    let mut v2 = sealed.clone();
    v2[0] = 2;
    assert_eq!(
        keys.open_object(&id, &v2).unwrap_err(),
        CryptoError::UnknownFormat(2)
    );

    let mut flags = sealed.clone();
    flags[5] = 0x80;
    assert_eq!(
        keys.open_object(&id, &flags).unwrap_err(),
        CryptoError::UnknownFlags(0x80)
    );
    // Claiming compression for a raw body: bytes 0..6 are authenticated with the
    // data key, so it no longer unwraps.
    flags[5] = 1;
    assert_eq!(
        keys.open_object(&id, &flags).unwrap_err(),
        CryptoError::WrongKey
    );
    // The body nonce is authenticated with the body.
    let mut nonce = sealed.clone();
    nonce[SEALED_HEADER_LEN - 1] ^= 0x40;
    assert_eq!(
        keys.open_object(&id, &nonce).unwrap_err(),
        CryptoError::Tampered
    );

    let epoch2 = ShareKeys::generate(&share(), Epoch(2)).unwrap();
    assert_eq!(
        epoch2.open_object(&id, &sealed).unwrap_err(),
        CryptoError::EpochMismatch {
            sealed: Epoch(1),
            keys: Epoch(2)
        }
    );
    // Another share's keys at the same epoch number.
    assert_eq!(
        self::keys().open_object(&id, &sealed).unwrap_err(),
        CryptoError::WrongKey
    );

    let mut body = sealed.clone();
    body[SEALED_HEADER_LEN + 10] ^= 0x01;
    assert_eq!(
        keys.open_object(&id, &body).unwrap_err(),
        CryptoError::Tampered
    );

    // An object stored under another object's ID.
    let other = keys.object_id(b"other chunk");
    assert_eq!(
        keys.open_object(&other, &sealed).unwrap_err(),
        CryptoError::Tampered
    );
}

#[test]
fn manifests_are_sealed_apart_from_objects() {
    let keys = keys();
    let manifest = b"docs/report.odt 41234 1764547200 [ids...]".to_vec();
    let sealed = keys.seal_manifest(7, &manifest).unwrap();
    assert_eq!(keys.open_manifest(7, &sealed).unwrap(), manifest);
    // An old manifest served as a newer version.
    assert_eq!(
        keys.open_manifest(8, &sealed).unwrap_err(),
        CryptoError::Tampered
    );
    // A manifest is not an object and vice versa (different key, different domain).
    let id = keys.object_id(&manifest);
    assert_eq!(
        keys.open_object(&id, &sealed).unwrap_err(),
        CryptoError::WrongKey
    );
    let object = keys.seal_object(&id, &manifest).unwrap();
    assert_eq!(
        keys.open_manifest(7, &object).unwrap_err(),
        CryptoError::WrongKey
    );
    let mut ring = KeyRing::new(share());
    ring.insert(keys).unwrap();
    assert_eq!(ring.open_manifest(7, &sealed).unwrap(), manifest);
}

fn boundaries(chunker: &KeyedChunker, data: &[u8]) -> Vec<usize> {
    chunker.chunks(data).map(|r| r.end).collect()
}

#[test]
fn the_chunker_is_deterministic_per_share_and_differs_across_shares() {
    let data = noise(4 << 20, 5);
    let (share1, share2) = (keys(), keys());
    let one = KeyedChunker::new(&share1);
    let b1 = boundaries(&one, &data);
    assert_eq!(b1, boundaries(&KeyedChunker::new(&share1), &data));
    let b2 = boundaries(&KeyedChunker::new(&share2), &data);
    assert_ne!(b1, b2);
    // Not a shared cut point between the two shares (besides the end).
    let shared = b1.iter().filter(|end| b2.contains(end)).count();
    assert!(shared <= 2, "{shared} common boundaries");

    // Nor the unkeyed fastcdc's cut points.
    let plain: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, 16 << 10, 64 << 10, 256 << 10)
        .map(|c| c.offset + c.length)
        .collect();
    assert_ne!(b1, plain);

    // Chunks tile the data, within fastcdc's bounds (the last may be short).
    let ranges: Vec<_> = one.chunks(&data).collect();
    assert_eq!(ranges.first().unwrap().start, 0);
    assert_eq!(ranges.last().unwrap().end, data.len());
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].end, pair[1].start);
    }
    for r in &ranges[..ranges.len() - 1] {
        assert!((16 << 10..=256 << 10).contains(&r.len()), "{}", r.len());
    }
    let avg = data.len() / ranges.len();
    assert!((32 << 10..=128 << 10).contains(&avg), "average {avg}");
    assert_eq!(one.chunks(&[]).count(), 0);
    assert_eq!(boundaries(&one, b"small"), vec![5]);
}

#[test]
fn the_chunker_still_resynchronises_after_an_insert() {
    // Content-defined: an edit near the start changes only the chunks around it.
    let keys = keys();
    let chunker = KeyedChunker::new(&keys);
    let data = noise(2 << 20, 6);
    let mut edited = data[..1000].to_vec();
    edited.extend_from_slice(b"inserted");
    edited.extend_from_slice(&data[1000..]);
    let ids =
        |d: &[u8]| -> Vec<ObjectId> { chunker.chunks(d).map(|r| keys.object_id(&d[r])).collect() };
    let (before, after) = (ids(&data), ids(&edited));
    let kept = after.iter().filter(|id| before.contains(id)).count();
    assert!(kept + 2 >= before.len(), "{kept} of {} kept", before.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn seal_then_open_round_trips(data in prop::collection::vec(any::<u8>(), 0..4096), repeat in 1usize..4) {
        let keys = ShareKeys::generate(&share(), Epoch(3)).unwrap();
        let data = data.repeat(repeat);
        let id = keys.object_id(&data);
        let sealed = keys.seal_object(&id, &data).unwrap();
        prop_assert!(sealed.len() <= (data.len() + 4).max(1024) * 112 / 100 + SEALED_OVERHEAD);
        prop_assert_eq!(keys.open_object(&id, &sealed).unwrap(), data.clone());
        let manifest = keys.seal_manifest(1, &data).unwrap();
        prop_assert_eq!(keys.open_manifest(1, &manifest).unwrap(), data);
    }

    #[test]
    fn any_single_flipped_bit_is_rejected(data in prop::collection::vec(any::<u8>(), 0..2048), bit in any::<prop::sample::Index>()) {
        let keys = keys();
        let id = keys.object_id(&data);
        let mut sealed = keys.seal_object(&id, &data).unwrap();
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(keys.open_object(&id, &sealed).is_err(), "bit {} accepted", bit);
    }

    #[test]
    fn arbitrary_bytes_never_open_or_panic(junk in prop::collection::vec(any::<u8>(), 0..400)) {
        let keys = keys();
        let id = keys.object_id(b"x");
        prop_assert!(keys.open_object(&id, &junk).is_err());
        prop_assert!(keys.open_manifest(1, &junk).is_err());
        if let Ok(slot) = KeySlot::from_bytes(&junk) {
            prop_assert!(slot.open_with_device(&share(), Epoch::FIRST, &DeviceIdentity::generate()).is_err());
        }
    }
}

#[test]
fn cutting_a_stream_cuts_where_the_whole_is_cut() {
    let data = noise(3 << 20, 11);
    let k = keys();
    let chunker = KeyedChunker::new(&k);
    let whole = boundaries(&chunker, &data);
    // Fed in uneven pieces, cut whenever a chunk's worth is buffered, then the rest.
    let mut ends = Vec::new();
    let (mut pending, mut consumed) = (Vec::new(), 0);
    for piece in data.chunks(77_777) {
        pending.extend_from_slice(piece);
        while pending.len() >= KeyedChunker::MAX_CHUNK {
            let n = chunker.cut(&pending);
            consumed += n;
            ends.push(consumed);
            pending.drain(..n);
        }
    }
    while !pending.is_empty() {
        let n = chunker.cut(&pending);
        consumed += n;
        ends.push(consumed);
        pending.drain(..n);
    }
    assert_eq!(ends, whole);
    assert_eq!(chunker.cut(&[]), 0);
}
