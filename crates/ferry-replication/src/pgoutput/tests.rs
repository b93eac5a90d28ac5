//! The decoder without a server: captured fixtures decode to the values the workload wrote,
//! malformed messages are errors, and a deterministic mutation loop finds no panic.

use bytes::Bytes;
use ferry_model::Lsn;

use super::fixtures::{fixture, FIXTURES};
use super::*;
use crate::stream::ReplicationMessage;

fn ctx(protocol_version: u32, in_stream: bool) -> DecodeContext {
    DecodeContext {
        protocol_version,
        in_stream,
    }
}

fn text(s: &str) -> ColumnValue {
    ColumnValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn decode_fixture(what: &str) -> LogicalMessage {
    let (_, protocol, in_stream, _) = FIXTURES.iter().find(|f| f.0 == what).expect("fixture");
    let data = fixture(what);
    let copied = decode(&data, ctx(*protocol, *in_stream)).expect(what);
    let shared = decode_bytes(&Bytes::from(data), ctx(*protocol, *in_stream)).expect(what);
    assert_eq!(copied, shared);
    copied
}

#[test]
fn every_fixture_decodes() {
    for (what, protocol, in_stream, _) in FIXTURES {
        decode(&fixture(what), ctx(*protocol, *in_stream))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn transaction_envelope() {
    assert_eq!(
        decode_fixture("begin"),
        LogicalMessage::Begin {
            final_lsn: Lsn(0x0193_a940),
            commit_time_us: 0x0003_03df_fd3b_ac76,
            xid: 0x2d6
        }
    );
    assert_eq!(
        decode_fixture("commit"),
        LogicalMessage::Commit {
            flags: 0,
            commit_lsn: Lsn(0x0193_a940),
            end_lsn: Lsn(0x0193_a970),
            commit_time_us: 0x0003_03df_fd3b_ac76,
        }
    );
}

#[test]
fn relation_type_and_changes() {
    let LogicalMessage::Relation { name, columns, .. } = decode_fixture("relation pk_t") else {
        panic!("relation")
    };
    assert_eq!(name, "pk_t");
    let keys: Vec<bool> = columns.iter().map(RelationColumn::is_key).collect();
    assert_eq!(keys, [true, false, false]);
    assert!(
        matches!(decode_fixture("type mood"), LogicalMessage::Type { name, xid: None, .. } if name == "mood")
    );
    let LogicalMessage::Update {
        key: Some(key),
        new,
        ..
    } = decode_fixture("update with key")
    else {
        panic!("update with key")
    };
    assert_eq!(key.0, [text("1"), ColumnValue::Null, ColumnValue::Null]);
    assert_eq!(new.0, [text("2"), ColumnValue::Null, text("happy")]);
    let LogicalMessage::Update { new, .. } = decode_fixture("update toast") else {
        panic!("update toast")
    };
    assert_eq!(new.0, [text("1"), ColumnValue::UnchangedToast, text("1")]);
    assert!(matches!(
        decode_fixture("truncate"),
        LogicalMessage::Truncate { options: 3, rel_ids, .. } if rel_ids.len() == 2
    ));
    assert!(matches!(
        decode_fixture("message no tx"),
        LogicalMessage::Message { transactional: false, prefix, content, .. }
            if prefix == "ferry-nt" && content.as_ref() == b"no tx"
    ));
}

#[test]
fn streamed_messages() {
    let mut state = StreamState::new(2);
    let start = state.decode(&fixture("stream start first")).expect("start");
    assert_eq!(
        start,
        LogicalMessage::StreamStart {
            xid: 0x2d6,
            first_segment: true
        }
    );
    assert!(state.in_stream());
    let LogicalMessage::Insert { xid, new, .. } =
        state.decode(&fixture("stream insert")).expect("insert")
    else {
        panic!("insert")
    };
    assert_eq!(xid, Some(0x2d6));
    assert_eq!(new.0.get(2), Some(&text("sad")));
    assert_eq!(
        state.decode(&fixture("stream stop")).expect("stop"),
        LogicalMessage::StreamStop
    );
    assert!(!state.in_stream());
    assert!(matches!(
        decode_fixture("stream commit"),
        LogicalMessage::StreamCommit { xid: 0x2d6, .. }
    ));
    assert_eq!(
        decode_fixture("stream abort"),
        LogicalMessage::StreamAbort {
            xid: 0x2d8,
            subxid: 0x2d9,
            abort_lsn: None,
            abort_time_us: None
        }
    );
    assert_eq!(
        decode_fixture("stream abort parallel"),
        LogicalMessage::StreamAbort {
            xid: 0x2f4,
            subxid: 0x2f5,
            abort_lsn: Some(Lsn(0x01e3_15c8)),
            abort_time_us: Some(0x0003_03e0_018d_f7f5),
        }
    );
}

fn problem(r: Result<LogicalMessage, ReplicationError>) -> (&'static str, usize, DecodeProblem) {
    match r {
        Err(ReplicationError::Decode {
            message,
            at,
            problem,
        }) => (message, at, problem),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn malformed_messages_are_errors() {
    let v1 = ctx(1, false);
    assert_eq!(problem(decode(b"", v1)).2, DecodeProblem::Empty);
    assert_eq!(
        problem(decode(b"Z", v1)),
        ("pgoutput", 1, DecodeProblem::UnknownType(b'Z'))
    );
    let begin = fixture("begin");
    assert_eq!(
        problem(decode(&begin[..10], v1)),
        (
            "Begin",
            9,
            DecodeProblem::Truncated {
                needed: 8,
                available: 1
            }
        )
    );
    let mut long = begin.clone();
    long.push(0);
    assert_eq!(
        problem(decode(&long, v1)).2,
        DecodeProblem::TrailingBytes(1)
    );
    // Stream messages, or a stream context, need protocol 2.
    assert_eq!(
        problem(decode(&fixture("stream stop"), v1)).2,
        DecodeProblem::NotInProtocol(1)
    );
    // A tuple column kind that does not exist.
    let mut insert = fixture("insert pk_t");
    insert[8] = b'x';
    assert_eq!(
        problem(decode(&insert, v1)),
        ("Insert", 9, DecodeProblem::UnknownColumnKind(b'x'))
    );
    // An update whose first tuple marker is not K, O or N.
    let mut update = fixture("update full");
    update[5] = b'Q';
    assert_eq!(
        problem(decode(&update, v1)).2,
        DecodeProblem::UnexpectedTupleMarker(b'Q')
    );
    // A negative column length.
    let mut neg = fixture("insert pk_t");
    neg[9] = 0xff;
    assert!(matches!(
        problem(decode(&neg, v1)).2,
        DecodeProblem::NegativeLength(_)
    ));
    // A string without its NUL.
    let ty = fixture("type mood");
    assert_eq!(
        problem(decode(&ty[..ty.len() - 1], v1)).2,
        DecodeProblem::UnterminatedString
    );
    let err = decode(&begin[..3], v1).expect_err("truncated");
    assert_eq!(
        err.to_string(),
        "cannot decode Begin message at byte 1: truncated: 8 bytes needed, 2 left"
    );
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `data`: flip bytes, set interesting values, truncate, extend, or splice.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = [
                    0, 0xff, 0x7f, 0x80, b'n', b'u', b't', b'b', b'K', b'O', b'N',
                ][rng.below(11)];
            }
            2 => data.truncate(rng.below(data.len() + 1)),
            3 => {
                for _ in 0..rng.below(16) {
                    data.push(rng.next() as u8);
                }
            }
            4 if !data.is_empty() => {
                let i = rng.below(data.len());
                data.insert(i, rng.next() as u8);
            }
            _ => *data = (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
        }
    }
}

#[test]
fn mutated_input_never_panics() {
    let seeds: Vec<Vec<u8>> = FIXTURES.iter().map(|f| fixture(f.0)).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for i in 0..20_000 {
        let mut data = seeds[i % seeds.len()].clone();
        mutate(&mut rng, &mut data);
        for protocol in 1..=4 {
            for in_stream in [false, true] {
                decoded += usize::from(decode(&data, ctx(protocol, in_stream)).is_ok());
            }
        }
        let _ = decode_bytes(&Bytes::from(data.clone()), ctx(4, true));
        // The same bytes as a CopyBoth payload, and wrapped in an XLogData.
        let _ = ReplicationMessage::parse(&data);
        let mut w = vec![b'w'];
        w.extend_from_slice(&[0; 24]);
        w.extend_from_slice(&data);
        data.insert(0, b'k');
        let _ = ReplicationMessage::parse(&data);
        assert!(ReplicationMessage::parse_bytes(&Bytes::from(w)).is_ok());
    }
    // The loop exercises the success paths too, not only the first error.
    assert!(decoded > 1_000, "{decoded}");
}
