//! The binary framing of an [`Envelope`] on the wire, shared by the buses that leave the
//! process ([`super::PostgresBus`], and `NatsBus` with the `nats` feature).
//!
//! ```text
//! +---------+----------------+---------------------+---------+---------+
//! | version | origin         | project length      | project | payload |
//! | 1 byte  | 16 bytes, uuid | 2 bytes, big endian | UTF-8   | rest    |
//! +---------+----------------+---------------------+---------+---------+
//! ```
//!
//! The version byte lets nodes of different releases share a bus: a node drops (and logs)
//! a frame whose version it does not know instead of misreading it.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Envelope, NodeId};

/// The version byte of the framing below.
const VERSION: u8 = 1;

/// Version, origin and project length.
const HEADER_LEN: usize = 1 + 16 + 2;

/// Why bytes are not a frame, or an envelope cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// Shorter than the header, or than the project length it announces.
    #[error("truncated frame")]
    Truncated,
    /// A version this node does not know (a newer node on the same bus).
    #[error("unknown frame version {0}")]
    UnknownVersion(u8),
    /// The project is not UTF-8.
    #[error("project is not UTF-8")]
    ProjectNotUtf8,
    /// The project is longer than the two length bytes can say.
    #[error("project ref of {0} bytes is too long to frame")]
    ProjectTooLong(usize),
}

/// The length of `envelope`'s frame.
pub(crate) fn encoded_len(envelope: &Envelope) -> usize {
    HEADER_LEN + envelope.project.len() + envelope.payload.len()
}

/// Frames `envelope`.
pub(crate) fn encode(envelope: &Envelope) -> Result<Bytes, FrameError> {
    let project_len =
        u16::try_from(envelope.project.len()).map_err(|_| FrameError::ProjectTooLong(envelope.project.len()))?;
    let mut frame = BytesMut::with_capacity(encoded_len(envelope));
    frame.put_u8(VERSION);
    frame.put_slice(envelope.origin.as_bytes());
    frame.put_u16(project_len);
    frame.put_slice(envelope.project.as_bytes());
    frame.put_slice(&envelope.payload);
    Ok(frame.freeze())
}

/// Reads a frame. The payload shares `frame`'s buffer.
pub(crate) fn decode(mut frame: Bytes) -> Result<Envelope, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let version = frame.get_u8();
    if version != VERSION {
        return Err(FrameError::UnknownVersion(version));
    }
    let mut origin = [0u8; 16];
    frame.copy_to_slice(&mut origin);
    let project_len = usize::from(frame.get_u16());
    if frame.len() < project_len {
        return Err(FrameError::Truncated);
    }
    let project = frame.split_to(project_len);
    let project = std::str::from_utf8(&project).map_err(|_| FrameError::ProjectNotUtf8)?;
    Ok(Envelope { origin: NodeId::from_bytes(origin), project: Arc::from(project), payload: frame })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(project: &str, payload: &[u8]) -> Envelope {
        Envelope {
            origin: NodeId::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            project: Arc::from(project),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn round_trips() {
        for (project, payload) in [
            ("abcdefghijklmnopqrst", &b"{\"event\":\"broadcast\"}"[..]),
            ("", &b""[..]),
            ("p", &[0u8, 255, 0, 10, 13][..]),
            ("ünïcode", &vec![7u8; 100_000][..]),
        ] {
            let original = envelope(project, payload);
            let frame = encode(&original).unwrap();
            assert_eq!(frame.len(), encoded_len(&original));
            assert_eq!(decode(frame).unwrap(), original);
        }
    }

    #[test]
    fn has_the_documented_layout() {
        let frame = encode(&envelope("ab", b"xyz")).unwrap();
        let mut expected = vec![1u8];
        expected.extend_from_slice(&0x0123_4567_89ab_cdef_0123_4567_89ab_cdef_u128.to_be_bytes());
        expected.extend_from_slice(&[0, 2, b'a', b'b', b'x', b'y', b'z']);
        assert_eq!(&frame[..], &expected[..]);
    }

    #[test]
    fn rejects_what_is_not_a_frame() {
        let frame = encode(&envelope("project", b"payload")).unwrap();
        assert_eq!(decode(Bytes::new()), Err(FrameError::Truncated));
        assert_eq!(decode(frame.slice(..HEADER_LEN - 1)), Err(FrameError::Truncated));
        // The header announces 7 project bytes; only 3 follow.
        assert_eq!(decode(frame.slice(..HEADER_LEN + 3)), Err(FrameError::Truncated));
        let mut newer = frame.to_vec();
        newer[0] = 2;
        assert_eq!(decode(Bytes::from(newer)), Err(FrameError::UnknownVersion(2)));
        let mut bad_utf8 = frame.to_vec();
        bad_utf8[HEADER_LEN] = 0xff;
        assert_eq!(decode(Bytes::from(bad_utf8)), Err(FrameError::ProjectNotUtf8));
    }

    #[test]
    fn rejects_a_project_too_long_to_frame() {
        let long = "p".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(encode(&envelope(&long, b"")), Err(FrameError::ProjectTooLong(long.len())));
        let longest = "p".repeat(usize::from(u16::MAX));
        assert_eq!(decode(encode(&envelope(&longest, b"x")).unwrap()).unwrap().project.len(), longest.len());
    }

    #[test]
    fn the_payload_shares_the_frame_buffer() {
        let frame = encode(&envelope("p", b"shared")).unwrap();
        let start = frame.as_ptr() as usize;
        let decoded = decode(frame.clone()).unwrap();
        assert_eq!(decoded.payload.as_ptr() as usize, start + HEADER_LEN + 1);
    }
}
