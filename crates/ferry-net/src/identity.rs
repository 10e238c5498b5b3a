//! This device's key pair, and the device ID people read aloud.
//!
//! The secret key lives in `$FERRY_HOME/device.key` (mode 0600). A key file anyone
//! else can read, or that another user owns, is refused: whoever holds the key *is*
//! this device to every peer that trusts it.
//!
//! A [`DeviceId`] is the public key, shown as Syncthing shows its device IDs: base32
//! (RFC 4648, no padding, upper case), cut into four 13-character groups, each followed
//! by a Luhn mod 32 check character, and printed as eight dash-separated groups of
//! seven, so a mistyped or misheard character is caught before any dialing.

use crate::error::IdentityError;
use data_encoding::BASE32_NOPAD;
use iroh::{PublicKey, SecretKey};
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the key under the ferry home.
pub const KEY_FILE: &str = "device.key";

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Base32 characters of a 32-byte key.
const DATA_CHARS: usize = 52;
/// Four groups of 13 data characters, each with its check character.
const GROUP: usize = 13;
const CHECKED_CHARS: usize = DATA_CHARS + DATA_CHARS / GROUP;

/// A device's public key: its identity on the wire and in the known-devices list.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(PublicKey);

impl DeviceId {
    pub fn from_public_key(key: PublicKey) -> Self {
        DeviceId(key)
    }

    pub fn public_key(&self) -> PublicKey {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The first group (seven characters): enough to tell devices apart in logs.
    pub fn short(&self) -> String {
        self.to_string()[..7].to_string()
    }
}

impl From<PublicKey> for DeviceId {
    fn from(key: PublicKey) -> Self {
        DeviceId(key)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = BASE32_NOPAD.encode(self.0.as_bytes());
        let mut checked = String::with_capacity(CHECKED_CHARS);
        for group in data.as_bytes().chunks(GROUP) {
            checked.extend(group.iter().map(|&b| b as char));
            checked.push(luhn32(group) as char);
        }
        let groups: Vec<&str> = (0..checked.len())
            .step_by(7)
            .map(|i| &checked[i..i + 7])
            .collect();
        f.write_str(&groups.join("-"))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl FromStr for DeviceId {
    type Err = IdentityError;

    /// Accepts upper or lower case, with or without dashes and spaces; as Syncthing,
    /// reads `0`, `1` and `8` (not in the alphabet) as the `O`, `I` and `B` they were
    /// surely meant to be.
    fn from_str(s: &str) -> Result<Self, IdentityError> {
        let mut chars = Vec::with_capacity(CHECKED_CHARS);
        for c in s.chars().filter(|c| *c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_uppercase() {
                '0' => 'O',
                '1' => 'I',
                '8' => 'B',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(IdentityError::BadCharacter(c));
            }
            chars.push(c as u8);
        }
        if chars.len() != CHECKED_CHARS {
            return Err(IdentityError::BadLength(chars.len()));
        }
        let mut data = Vec::with_capacity(DATA_CHARS);
        for (i, group) in chars.chunks(GROUP + 1).enumerate() {
            let (body, check) = group.split_at(GROUP);
            if luhn32(body) != check[0] {
                return Err(IdentityError::BadCheck { group: i + 1 });
            }
            data.extend_from_slice(body);
        }
        let bytes = BASE32_NOPAD
            .decode(&data)
            .map_err(|_| IdentityError::NotAKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| IdentityError::NotAKey)?;
        PublicKey::from_bytes(&bytes)
            .map(DeviceId)
            .map_err(|_| IdentityError::NotAKey)
    }
}

impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Luhn mod 32 over base32 characters, as Syncthing computes it (factor 1 first).
fn luhn32(group: &[u8]) -> u8 {
    let n = 32u32;
    let mut factor = 1;
    let mut sum = 0u32;
    for &c in group {
        let code = ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u32;
        let addend = factor * code;
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / n + addend % n;
    }
    ALPHABET[((n - sum % n) % n) as usize]
}

/// This device: its secret key and the ID derived from it.
#[derive(Clone)]
pub struct Identity {
    secret: SecretKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.id())
    }
}

impl Identity {
    /// Loads this device's key from `home`, creating it (and `home`) on first use.
    pub fn load_or_create(home: &Path) -> Result<Identity, IdentityError> {
        let path = home.join(KEY_FILE);
        match Identity::load(&path) {
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        std::fs::create_dir_all(home).map_err(io("create", home))?;
        Identity::create(&path)?;
        Identity::load(&path)
    }

    /// Loads the key at `path` if it exists (`Ok(None)` otherwise); creates nothing.
    pub fn load_existing(home: &Path) -> Result<Option<Identity>, IdentityError> {
        match Identity::load(&home.join(KEY_FILE)) {
            Err(IdentityError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    pub fn id(&self) -> DeviceId {
        DeviceId(self.secret.public())
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    fn load(path: &Path) -> Result<Identity, IdentityError> {
        let meta = std::fs::symlink_metadata(path).map_err(io("read", path))?;
        if !meta.is_file() {
            return Err(IdentityError::NotAFile(path.to_path_buf()));
        }
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(IdentityError::NotOwned(path.to_path_buf()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(IdentityError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(io("read", path))?;
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.trim().as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| IdentityError::Corrupt(path.to_path_buf()))?;
        Ok(Identity {
            secret: SecretKey::from_bytes(&bytes),
        })
    }

    /// Writes a new key beside `path` (0600 from the start, synced), then links it into
    /// place: two processes starting at once cannot both win, and the loser reads the
    /// winner's key.
    fn create(path: &Path) -> Result<(), IdentityError> {
        let secret = SecretKey::generate();
        let tmp = temp_beside(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        let text = format!("{}\n", data_encoding::HEXLOWER.encode(&secret.to_bytes()));
        let written = f
            .write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io("write", &tmp));
        let linked = written.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other.map_err(io("create", path)),
        });
        let _ = std::fs::remove_file(&tmp);
        linked?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_from(seed: [u8; 32]) -> DeviceId {
        DeviceId(SecretKey::from_bytes(&seed).public())
    }

    #[test]
    fn displays_as_eight_groups_of_seven() {
        let s = id_from([7; 32]).to_string();
        let groups: Vec<&str> = s.split('-').collect();
        assert_eq!(groups.len(), 8, "{s}");
        assert!(groups.iter().all(|g| g.len() == 7), "{s}");
        assert!(s.chars().all(|c| c == '-' || ALPHABET.contains(&(c as u8))));
    }

    #[test]
    fn parses_without_dashes_and_in_lower_case() {
        let id = id_from([9; 32]);
        let s = id.to_string();
        assert_eq!(s.replace('-', "").parse::<DeviceId>().unwrap(), id);
        assert_eq!(s.to_lowercase().parse::<DeviceId>().unwrap(), id);
        let spaced = s.replace('-', " ");
        assert_eq!(spaced.parse::<DeviceId>().unwrap(), id);
    }

    #[test]
    fn a_wrong_character_fails_its_group_check() {
        let s = id_from([3; 32]).to_string();
        // Change one data character of the third group (chars 28..42 without dashes).
        let mut plain: Vec<u8> = s.replace('-', "").into_bytes();
        plain[30] = if plain[30] == b'A' { b'B' } else { b'A' };
        let err = String::from_utf8(plain)
            .unwrap()
            .parse::<DeviceId>()
            .unwrap_err();
        assert!(
            matches!(err, IdentityError::BadCheck { group: 3 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("group 3"), "{err}");
    }

    #[test]
    fn wrong_length_and_characters_are_typed_errors() {
        assert!(matches!(
            "ABC".parse::<DeviceId>(),
            Err(IdentityError::BadLength(3))
        ));
        assert!(matches!(
            "ABC!".parse::<DeviceId>(),
            Err(IdentityError::BadCharacter('!'))
        ));
    }

    #[test]
    fn key_is_created_once_with_mode_0600() {
        let home = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(home.path()).unwrap();
        let b = Identity::load_or_create(home.path()).unwrap();
        assert_eq!(a.id(), b.id());
        let meta = std::fs::metadata(home.path().join(KEY_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            Identity::load_existing(home.path()).unwrap().unwrap().id(),
            a.id()
        );
    }

    #[test]
    fn missing_key_is_none_and_creates_nothing() {
        let home = tempfile::tempdir().unwrap();
        let sub = home.path().join("h");
        assert!(Identity::load_existing(&sub).unwrap().is_none());
        assert!(!sub.exists());
    }

    #[test]
    fn a_readable_key_is_refused() {
        let home = tempfile::tempdir().unwrap();
        Identity::load_or_create(home.path()).unwrap();
        let path = home.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Identity::load_or_create(home.path()).unwrap_err();
        assert!(
            matches!(err, IdentityError::Exposed { mode: 0o640, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_garbled_key_is_corrupt() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(KEY_FILE);
        std::fs::write(&path, "not hex\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            Identity::load_or_create(home.path()),
            Err(IdentityError::Corrupt(_))
        ));
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(seed in any::<[u8; 32]>()) {
            let id = id_from(seed);
            prop_assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = s.parse::<DeviceId>();
        }
    }
}
