//! A device's own key pair for key slots: an age X25519 identity. Stored and shown as
//! age's Bech32 strings (`AGE-SECRET-KEY-1…`, `age1…`).

use std::fmt;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::CryptoError;

/// A device's secret key for opening its key slots. Never printed.
#[derive(Clone)]
pub struct DeviceIdentity(pub(crate) age::x25519::Identity);

/// The public half: what a share's members wrap the root key to.
#[derive(Clone)]
pub struct DeviceRecipient(pub(crate) age::x25519::Recipient);

impl DeviceIdentity {
    pub fn generate() -> Self {
        DeviceIdentity(age::x25519::Identity::generate())
    }

    /// The Bech32 secret string, to store in the device's key file.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.to_string().expose_secret().to_owned())
    }

    pub fn recipient(&self) -> DeviceRecipient {
        DeviceRecipient(self.0.to_public())
    }
}

impl FromStr for DeviceIdentity {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(DeviceIdentity)
            .map_err(CryptoError::BadDeviceKey)
    }
}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceIdentity({})", self.recipient())
    }
}

impl FromStr for DeviceRecipient {
    type Err = CryptoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(DeviceRecipient)
            .map_err(CryptoError::BadDeviceKey)
    }
}

impl fmt::Display for DeviceRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for DeviceRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceRecipient({})", self.0)
    }
}

impl PartialEq for DeviceRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for DeviceRecipient {}
