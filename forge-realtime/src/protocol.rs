//! Phoenix channel frames, in the serializer the client asked for with `vsn`.
//!
//! - `1.0.0`: text frames holding a JSON object `{topic, event, payload, ref, join_ref}`.
//! - `2.0.0`: text frames holding a JSON array `[join_ref, ref, topic, event, payload]`, plus
//!   binary broadcast frames: kind 3 from the client (a user broadcast), kind 4 to it.
//!
//! realtime-js decodes no other binary kind (its receive path throws on them), so replies,
//! pushes and JSON broadcasts always go out as text.

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use serde_json::{Map, Value, json};

/// The serializer a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Vsn {
    /// `1.0.0`: JSON objects (supabase-py).
    V1,
    /// `2.0.0`: JSON arrays and binary broadcasts (realtime-js).
    V2,
}

impl Vsn {
    /// The serializer for a `vsn` query value; Phoenix's default is 1.0.0.
    pub(crate) fn parse(vsn: Option<&str>) -> Option<Vsn> {
        match vsn {
            None | Some("1.0.0") => Some(Vsn::V1),
            Some("2.0.0") => Some(Vsn::V2),
            Some(_) => None,
        }
    }
}

/// A user broadcast's payload: JSON, or raw bytes (binary frames only).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// A JSON value.
    Json(Value),
    /// Raw bytes, which only 2.0.0 sockets can receive.
    Binary(Bytes),
}

/// One frame from the client.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inbound {
    pub(crate) join_ref: Option<String>,
    pub(crate) reference: Option<String>,
    pub(crate) topic: String,
    pub(crate) event: String,
    pub(crate) payload: InboundPayload,
}

/// What an inbound frame carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InboundPayload {
    /// A JSON payload (every text frame).
    Json(Value),
    /// A user broadcast sent as a binary frame (kind 3): its event and payload.
    Broadcast { event: String, body: Body },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub(crate) struct Malformed(pub(crate) &'static str);

/// A string member that may be null or a number (refs), as a string.
fn string_or_null(v: Option<&Value>) -> Result<Option<String>, Malformed> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Malformed("a ref must be a string")),
    }
}

/// Reads a text frame.
pub(crate) fn decode_text(vsn: Vsn, text: &str) -> Result<Inbound, Malformed> {
    let value: Value = serde_json::from_str(text).map_err(|_| Malformed("not JSON"))?;
    let (join_ref, reference, topic, event, payload) = match (vsn, value) {
        (Vsn::V2, Value::Array(mut items)) if items.len() == 5 => {
            let payload = items.pop().unwrap_or(Value::Null);
            let event = items.pop().unwrap_or(Value::Null);
            let topic = items.pop().unwrap_or(Value::Null);
            let reference = items.pop();
            let join_ref = items.pop();
            (string_or_null(join_ref.as_ref())?, string_or_null(reference.as_ref())?, topic, event, payload)
        }
        (Vsn::V1, Value::Object(mut map)) => (
            string_or_null(map.get("join_ref"))?,
            string_or_null(map.get("ref"))?,
            map.remove("topic").unwrap_or(Value::Null),
            map.remove("event").unwrap_or(Value::Null),
            map.remove("payload").unwrap_or(Value::Null),
        ),
        (Vsn::V2, _) => return Err(Malformed("a 2.0.0 frame is an array of five")),
        (Vsn::V1, _) => return Err(Malformed("a 1.0.0 frame is an object")),
    };
    let (Value::String(topic), Value::String(event)) = (topic, event) else {
        return Err(Malformed("topic and event must be strings"));
    };
    Ok(Inbound { join_ref, reference, topic, event, payload: InboundPayload::Json(payload) })
}

/// Reads a binary frame: only kind 3 (a user broadcast push) comes from clients.
pub(crate) fn decode_binary(bytes: &[u8]) -> Result<Inbound, Malformed> {
    const HEADER: usize = 7;
    let short = Malformed("a binary frame shorter than its header");
    let [kind, join_ref_len, ref_len, topic_len, event_len, meta_len, encoding, ..] = *bytes else {
        return Err(short);
    };
    if kind != 3 {
        return Err(Malformed("only user broadcast frames (kind 3) come from clients"));
    }
    let lens = [join_ref_len, ref_len, topic_len, event_len, meta_len].map(usize::from);
    let mut at = HEADER;
    let mut fields: [&[u8]; 5] = [&[]; 5];
    for (field, len) in fields.iter_mut().zip(lens) {
        *field = bytes.get(at..at + len).ok_or(short.clone())?;
        at += len;
    }
    // realtime-js writes each name's characters as single bytes (their low byte), so a name
    // that is not UTF-8 is read as Latin-1: characters up to U+00FF come through.
    let text = |b: &[u8]| -> Result<String, Malformed> {
        Ok(String::from_utf8(b.to_vec()).unwrap_or_else(|_| b.iter().map(|&c| char::from(c)).collect()))
    };
    let [join_ref, reference, topic, event, _meta] = fields;
    let payload = &bytes[at..];
    let body = match encoding {
        1 => Body::Json(serde_json::from_slice(payload).map_err(|_| Malformed("a JSON payload that does not parse"))?),
        0 => Body::Binary(Bytes::copy_from_slice(payload)),
        _ => return Err(Malformed("an unknown payload encoding")),
    };
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(Inbound {
        join_ref: non_empty(text(join_ref)?),
        reference: non_empty(text(reference)?),
        topic: text(topic)?,
        event: "broadcast".to_owned(),
        payload: InboundPayload::Broadcast { event: text(event)?, body },
    })
}

/// Encodes a frame as text in `vsn`'s shape.
pub(crate) fn encode(
    vsn: Vsn,
    join_ref: Option<&str>,
    reference: Option<&str>,
    topic: &str,
    event: &str,
    payload: &Value,
) -> Message {
    let value = match vsn {
        Vsn::V1 => {
            json!({ "topic": topic, "event": event, "payload": payload, "ref": reference, "join_ref": join_ref })
        }
        Vsn::V2 => json!([join_ref, reference, topic, event, payload]),
    };
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// A `postgres_changes` push, `{ids, data}` with `data` already serialized (it is shared by
/// every subscriber who sees the same columns).
pub(crate) fn encode_change(vsn: Vsn, topic: &str, ids: &[u32], data: &str) -> Message {
    let topic = Value::from(topic).to_string();
    let ids = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
    let text = match vsn {
        Vsn::V1 => format!(
            r#"{{"topic":{topic},"event":"postgres_changes","payload":{{"ids":{ids},"data":{data}}},"ref":null,"join_ref":null}}"#
        ),
        Vsn::V2 => format!(r#"[null,null,{topic},"postgres_changes",{{"ids":{ids},"data":{data}}}]"#),
    };
    Message::Text(Utf8Bytes::from(text))
}

/// Encodes a user broadcast for `vsn`: as text `{type, event, payload}` when the payload is
/// JSON, as a binary kind-4 frame when it is raw bytes (2.0.0 only; `None` for 1.0.0, which
/// cannot receive bytes).
pub(crate) fn encode_broadcast(
    vsn: Vsn,
    topic: &str,
    event: &str,
    body: &Body,
    meta: Option<&Value>,
) -> Option<Message> {
    match body {
        Body::Json(payload) => {
            let mut inner = Map::new();
            inner.insert("type".into(), Value::from("broadcast"));
            inner.insert("event".into(), Value::from(event));
            inner.insert("payload".into(), payload.clone());
            if let Some(meta) = meta {
                inner.insert("meta".into(), meta.clone());
            }
            Some(encode(vsn, None, None, topic, "broadcast", &Value::Object(inner)))
        }
        Body::Binary(bytes) => match vsn {
            Vsn::V1 => None,
            Vsn::V2 => encode_binary_broadcast(topic, event, meta, 0, bytes),
        },
    }
}

/// A kind-4 frame: byte 4, the lengths of topic, event and metadata, the encoding, then the
/// three strings and the payload. `None` when a name is longer than a length byte holds.
fn encode_binary_broadcast(
    topic: &str,
    event: &str,
    meta: Option<&Value>,
    encoding: u8,
    payload: &[u8],
) -> Option<Message> {
    let meta = meta.map(Value::to_string).unwrap_or_default();
    let lens = [topic.len(), event.len(), meta.len()].map(|l| u8::try_from(l).ok());
    let [Some(t), Some(e), Some(m)] = lens else {
        return None;
    };
    let mut out = Vec::with_capacity(5 + topic.len() + event.len() + meta.len() + payload.len());
    out.extend_from_slice(&[4, t, e, m, encoding]);
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(payload);
    Some(Message::Binary(Bytes::from(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Message) -> Value {
        match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn vsn_picks_the_serializer() {
        assert_eq!(Vsn::parse(None), Some(Vsn::V1));
        assert_eq!(Vsn::parse(Some("1.0.0")), Some(Vsn::V1));
        assert_eq!(Vsn::parse(Some("2.0.0")), Some(Vsn::V2));
        assert_eq!(Vsn::parse(Some("3.0.0")), None);
    }

    #[test]
    fn v2_text_frames_are_arrays() {
        let f = decode_text(Vsn::V2, r#"["6","6","realtime:room1","phx_join",{"config":{}}]"#).unwrap();
        assert_eq!(f.join_ref.as_deref(), Some("6"));
        assert_eq!(f.reference.as_deref(), Some("6"));
        assert_eq!(f.topic, "realtime:room1");
        assert_eq!(f.event, "phx_join");
        assert_eq!(f.payload, InboundPayload::Json(json!({"config":{}})));
        let hb = decode_text(Vsn::V2, r#"[null,"7","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!((hb.join_ref, hb.reference.as_deref()), (None, Some("7")));
        assert!(decode_text(Vsn::V2, r#"{"topic":"x"}"#).is_err());
        assert!(decode_text(Vsn::V2, r#"["1","1","t"]"#).is_err());
        assert!(decode_text(Vsn::V2, r#"["1","1",5,"e",{}]"#).is_err());

        let out = text(encode(Vsn::V2, Some("6"), Some("6"), "realtime:room1", "phx_reply", &json!({"status":"ok"})));
        assert_eq!(out, json!(["6", "6", "realtime:room1", "phx_reply", {"status": "ok"}]));
        let push = text(encode(Vsn::V2, None, None, "realtime:r", "system", &json!({})));
        assert_eq!(push, json!([null, null, "realtime:r", "system", {}]));
    }

    #[test]
    fn v1_text_frames_are_objects() {
        let f = decode_text(
            Vsn::V1,
            r#"{"topic":"realtime:ü","event":"phx_join","payload":{"a":1},"ref":"1","join_ref":null}"#,
        )
        .unwrap();
        assert_eq!(f.topic, "realtime:ü");
        assert_eq!((f.join_ref, f.reference.as_deref()), (None, Some("1")));
        // Python sends refs as strings; some clients send numbers.
        let n = decode_text(Vsn::V1, r#"{"topic":"t","event":"e","payload":{},"ref":3}"#).unwrap();
        assert_eq!(n.reference.as_deref(), Some("3"));
        assert!(decode_text(Vsn::V1, r#"["1","1","t","e",{}]"#).is_err());

        let out = text(encode(Vsn::V1, None, Some("4"), "phoenix", "phx_reply", &json!({"status":"ok","response":{}})));
        assert_eq!(
            out,
            json!({"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"4","join_ref":null})
        );
    }

    #[test]
    fn kind_3_frames_decode_as_captured_from_realtime_js() {
        let mut frame = vec![3, 1, 1, 14, 5, 0, 1];
        frame.extend_from_slice(b"67realtime:room1hello{\"a\":1}");
        let f = decode_binary(&frame).unwrap();
        assert_eq!((f.join_ref.as_deref(), f.reference.as_deref()), (Some("6"), Some("7")));
        assert_eq!(f.topic, "realtime:room1");
        assert_eq!(f.event, "broadcast");
        assert_eq!(f.payload, InboundPayload::Broadcast { event: "hello".into(), body: Body::Json(json!({"a": 1})) });

        // Raw bytes, a non-ASCII topic (UTF-8 bytes counted), empty refs.
        let topic = "realtime:café";
        let mut raw = vec![3, 0, 0, topic.len() as u8, 1, 0, 0];
        raw.extend_from_slice(topic.as_bytes());
        raw.extend_from_slice(b"e\x00\xff\x01");
        let f = decode_binary(&raw).unwrap();
        assert_eq!(f.topic, topic);
        assert_eq!(f.join_ref, None);
        assert_eq!(
            f.payload,
            InboundPayload::Broadcast { event: "e".into(), body: Body::Binary(Bytes::from_static(b"\x00\xff\x01")) }
        );

        assert!(decode_binary(&[3, 1, 1]).is_err());
        assert!(decode_binary(&[4, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode_binary(&[3, 0, 0, 1, 1, 0, 1, b't', b'e', b'{']).is_err());
        assert!(decode_binary(&[3, 0, 0, 5, 1, 0, 1, b't']).is_err());
        assert!(decode_binary(&[3, 0, 0, 1, 1, 0, 9, b't', b'e']).is_err());

        // realtime-js keeps each character's low byte: "café" arrives as Latin-1.
        let mut latin = vec![3, 0, 0, 13, 1, 0, 1];
        latin.extend_from_slice(b"realtime:caf\xe9e{}");
        assert_eq!(decode_binary(&latin).unwrap().topic, "realtime:café");
    }

    #[test]
    fn changes_encode_with_their_data_spliced_in() {
        let data = r#"{"type":"INSERT","record":{"a":"ü"}}"#;
        let v2 = text(encode_change(Vsn::V2, "realtime:t\"x", &[3, 4], data));
        assert_eq!(
            v2,
            json!([null, null, "realtime:t\"x", "postgres_changes", {"ids": [3, 4], "data": {"type": "INSERT", "record": {"a": "ü"}}}])
        );
        let v1 = text(encode_change(Vsn::V1, "realtime:t", &[1], data));
        assert_eq!(
            v1,
            json!({"topic": "realtime:t", "event": "postgres_changes", "payload": {"ids": [1], "data": {"type": "INSERT", "record": {"a": "ü"}}}, "ref": null, "join_ref": null})
        );
    }

    #[test]
    fn broadcasts_encode_per_serializer() {
        let json_body = Body::Json(json!({"n": "ü"}));
        let v2 = text(encode_broadcast(Vsn::V2, "realtime:r", "ev", &json_body, None).unwrap());
        assert_eq!(
            v2,
            json!([null, null, "realtime:r", "broadcast", {"type":"broadcast","event":"ev","payload":{"n":"ü"}}])
        );
        let v1 = text(encode_broadcast(Vsn::V1, "realtime:r", "ev", &json_body, Some(&json!({"id":"x"}))).unwrap());
        assert_eq!(v1["payload"], json!({"type":"broadcast","event":"ev","payload":{"n":"ü"},"meta":{"id":"x"}}));
        assert_eq!(v1["ref"], Value::Null);

        let raw = Body::Binary(Bytes::from_static(b"\x01\x02"));
        assert!(encode_broadcast(Vsn::V1, "realtime:r", "ev", &raw, None).is_none());
        let Some(Message::Binary(bin)) = encode_broadcast(Vsn::V2, "realtime:é", "ev", &raw, None) else {
            panic!("binary expected");
        };
        let topic = "realtime:é".as_bytes();
        let mut expected = vec![4, topic.len() as u8, 2, 0, 0];
        expected.extend_from_slice(topic);
        expected.extend_from_slice(b"ev\x01\x02");
        assert_eq!(&bin[..], &expected[..]);
        let long = "x".repeat(300);
        assert!(encode_broadcast(Vsn::V2, &long, "ev", &raw, None).is_none());
    }
}
