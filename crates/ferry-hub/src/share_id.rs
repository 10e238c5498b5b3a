use std::fmt;
use std::str::FromStr;

/// A share's name at the hub. Key slots are bound to it (a hub cannot hand a device one
/// share's keys as another's), and it becomes part of blob paths and database keys, so
/// it is restricted to characters that are safe in both.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareId(String);

impl ShareId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ShareId {
    type Err = BadShareId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(ShareId(s.to_owned()))
        } else {
            Err(BadShareId(s.to_owned()))
        }
    }
}

impl fmt::Display for ShareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid share ID {0:?}: 1-64 characters of A-Z a-z 0-9 - _")]
pub struct BadShareId(pub String);
