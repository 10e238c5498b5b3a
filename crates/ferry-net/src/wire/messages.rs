//! The messages. Every frame carries one [`Envelope`], whose `body` says which message
//! it is; new messages get new tags in [`Body`], and new fields new tags in their
//! message, never a reused one (the golden bytes in `tests/golden.rs` pin the format).

/// The protocol this build speaks; a peer with another version is closed with
/// [`crate::node::CloseCode::Incompatible`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Optional abilities this build announces in its `Hello`; a peer that lacks one is
/// spoken to without it (unknown names are ignored).
pub const FEATURES: &[&str] = &[PIPELINED, ZSTD];

/// "Send me several `PieceRequest`s on one stream; I answer each, in order." A peer
/// without it gets one stream per piece (sequential requests per stream).
pub const PIPELINED: &str = "pieces-pipelined";

/// "You may answer my piece requests with zstd-compressed data."
pub const ZSTD: &str = "zstd";

/// One framed message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(oneof = "Body", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub body: Option<Body>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Body {
    #[prost(message, tag = "1")]
    Hello(Hello),
    #[prost(message, tag = "2")]
    Close(Close),
    #[prost(message, tag = "3")]
    ShareList(crate::wire::share::ShareList),
    #[prost(message, tag = "4")]
    IndexRequest(crate::wire::share::IndexRequest),
    #[prost(message, tag = "5")]
    IndexBatch(crate::wire::share::IndexBatch),
    #[prost(message, tag = "6")]
    Changed(crate::wire::share::Changed),
    #[prost(message, tag = "7")]
    PieceRequest(crate::wire::share::PieceRequest),
    #[prost(message, tag = "8")]
    PieceReply(crate::wire::share::PieceReply),
}

/// The first message each side sends on a connection.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    /// Optional abilities, by name (unknown ones are ignored).
    #[prost(string, repeated, tag = "2")]
    pub features: Vec<String>,
    /// What the user calls the sending device (its host name by default).
    #[prost(string, tag = "3")]
    pub device_name: String,
}

/// Why a side is ending the conversation, sent before it closes (the QUIC close code
/// carries the same code, for peers that miss this message).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Close {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub reason: String,
}

impl Body {
    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Hello(_) => "Hello",
            Body::Close(_) => "Close",
            Body::ShareList(_) => "ShareList",
            Body::IndexRequest(_) => "IndexRequest",
            Body::IndexBatch(_) => "IndexBatch",
            Body::Changed(_) => "Changed",
            Body::PieceRequest(_) => "PieceRequest",
            Body::PieceReply(_) => "PieceReply",
        }
    }
}

impl From<Hello> for Envelope {
    fn from(h: Hello) -> Self {
        Envelope {
            body: Some(Body::Hello(h)),
        }
    }
}

impl From<Close> for Envelope {
    fn from(c: Close) -> Self {
        Envelope {
            body: Some(Body::Close(c)),
        }
    }
}

macro_rules! into_envelope {
    ($($name:ident),*) => {$(
        impl From<crate::wire::share::$name> for Envelope {
            fn from(m: crate::wire::share::$name) -> Self {
                Envelope {
                    body: Some(Body::$name(m)),
                }
            }
        }
    )*};
}

into_envelope!(
    ShareList,
    IndexRequest,
    IndexBatch,
    Changed,
    PieceRequest,
    PieceReply
);

impl Hello {
    /// This build's hello.
    pub fn ours(device_name: &str) -> Hello {
        Hello {
            protocol_version: PROTOCOL_VERSION,
            features: FEATURES.iter().map(|f| f.to_string()).collect(),
            device_name: device_name.to_string(),
        }
    }

    /// Whether this hello announces `feature`.
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}
