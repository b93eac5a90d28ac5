//! Any bytes through the pgoutput decoder (every protocol version, inside and outside a
//! stream) and the CopyBoth parser: errors are fine, panics are bugs.
#![no_main]

use ferry_replication::pgoutput::{decode, DecodeContext};
use ferry_replication::stream::ReplicationMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for protocol_version in 1..=4 {
        for in_stream in [false, true] {
            let _ = decode(
                data,
                DecodeContext {
                    protocol_version,
                    in_stream,
                },
            );
        }
    }
    let _ = ReplicationMessage::parse(data);
});
