use bytes::Bytes;
use ferry_model::Lsn;

use super::*;

/// A pgoutput Relation message for `rel_id` (protocol 1, one column).
fn relation(rel_id: u32) -> Bytes {
    let mut m = vec![b'R'];
    m.extend_from_slice(&rel_id.to_be_bytes());
    m.extend_from_slice(b"public\0t\0");
    m.push(b'd');
    m.extend_from_slice(&1u16.to_be_bytes());
    m.push(1);
    m.extend_from_slice(b"id\0");
    m.extend_from_slice(&23u32.to_be_bytes());
    m.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(m)
}

/// Writes transaction `n` (Begin, Insert, Commit) ending at `n * 100`.
async fn transaction(w: &mut SpoolWriter, n: u64) {
    let end = Lsn(n * 100);
    w.data(Lsn(end.0 - 90), end, format!("B{n}").as_bytes())
        .await
        .expect("begin");
    w.data(Lsn(end.0 - 50), end, format!("I{n}").as_bytes())
        .await
        .expect("insert");
    w.commit(Lsn(end.0 - 10), end, format!("C{n}").as_bytes())
        .await
        .expect("commit");
}

async fn payloads(spool: &Spool) -> Vec<String> {
    let mut records = spool.records();
    let mut out = Vec::new();
    while let Some(r) = records.next().await.expect("record") {
        out.push(String::from_utf8_lossy(&r.payload).into_owned());
    }
    out
}

#[tokio::test]
async fn records_come_back_in_order_across_segments() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool_dir = dir.path().join("spool");
    let mut w = SpoolWriter::open(&spool_dir, 1, Lsn(50))
        .await
        .expect("open");
    w.set_segment_bytes(200);
    w.relation(7, Lsn(55), Lsn(55), relation(7))
        .await
        .expect("relation");
    for n in 1..=5 {
        transaction(&mut w, n).await;
    }
    w.mark(Lsn(650)).await.expect("mark");
    assert_eq!(w.close().await.expect("close"), Lsn(650));

    let mut spool = Spool::open(&spool_dir)
        .await
        .expect("open")
        .expect("a spool");
    assert!(spool.segments().len() > 2, "{:?}", spool.segments());
    assert_eq!((spool.start(), spool.end()), (Lsn(50), Lsn(650)));
    let got = payloads(&spool).await;
    let rel = String::from_utf8_lossy(&relation(7)).into_owned();
    let plain: Vec<&String> = got.iter().filter(|p| **p != rel && !p.is_empty()).collect();
    assert_eq!(
        plain,
        [
            "B1", "I1", "C1", "B2", "I2", "C2", "B3", "I3", "C3", "B4", "I4", "C4", "B5", "I5",
            "C5"
        ]
    );
    // Every segment repeats the relation at its head.
    let heads = got.iter().filter(|p| **p == rel).count();
    assert_eq!(heads, spool.segments().len(), "{got:?}");

    // Applied through transaction 3: the segments ending there or before go.
    let removed = spool.remove_through(Lsn(300)).await.expect("remove");
    assert!(removed >= 1);
    let spool = Spool::open(&spool_dir)
        .await
        .expect("open")
        .expect("a spool");
    assert!(spool.start() <= Lsn(300) && spool.end() == Lsn(650));
    let got = payloads(&spool).await;
    assert!(got.contains(&"C5".to_owned()) && got[0] == rel, "{got:?}");
}

#[tokio::test]
async fn a_torn_tail_ends_the_spool_at_its_last_transaction_and_is_cut_on_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool_dir = dir.path().join("spool");
    let mut w = SpoolWriter::open(&spool_dir, 1, Lsn(50))
        .await
        .expect("open");
    transaction(&mut w, 1).await;
    // Transaction 2 is cut short by a crash: its Begin is written, its Insert half-written.
    w.data(Lsn(110), Lsn(200), b"B2").await.expect("begin");
    assert_eq!(w.sync().await.expect("sync"), Lsn(100));
    drop(w);
    let seg = spool_dir.join("00000001.seg");
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes.extend_from_slice(&[2, 0, 0, 0]); // a record header cut after 4 bytes
    std::fs::write(&seg, &bytes).expect("tear");

    let spool = Spool::open(&spool_dir)
        .await
        .expect("open")
        .expect("a spool");
    assert_eq!(spool.end(), Lsn(100));
    assert_eq!(payloads(&spool).await, ["B1", "I1", "C1"]);

    let mut w = SpoolWriter::open(&spool_dir, 1, Lsn(50))
        .await
        .expect("reopen");
    assert_eq!(w.end(), Lsn(100));
    transaction(&mut w, 2).await;
    w.close().await.expect("close");
    let spool = Spool::open(&spool_dir)
        .await
        .expect("open")
        .expect("a spool");
    assert_eq!(spool.end(), Lsn(200));
    assert_eq!(payloads(&spool).await, ["B1", "I1", "C1", "B2", "I2", "C2"]);
}

#[tokio::test]
async fn damage_inside_the_spool_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool_dir = dir.path().join("spool");
    let mut w = SpoolWriter::open(&spool_dir, 1, Lsn(50))
        .await
        .expect("open");
    w.set_segment_bytes(100);
    for n in 1..=4 {
        transaction(&mut w, n).await;
    }
    w.close().await.expect("close");
    let first = spool_dir.join("00000001.seg");
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[40] ^= 0xFF; // inside the first record
    std::fs::write(&first, &bytes).expect("damage");
    let spool = Spool::open(&spool_dir)
        .await
        .expect("open")
        .expect("a spool");
    let mut records = spool.records();
    let e = loop {
        match records.next().await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("damage not seen"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(e, crate::ReplicationError::SpoolCorrupt { .. }),
        "{e:?}"
    );

    std::fs::remove_file(spool_dir.join("00000002.seg")).expect("remove");
    let e = Spool::open(&spool_dir).await.expect_err("a gap");
    assert!(e.to_string().contains("segment 2 is missing"), "{e}");
}

#[tokio::test]
async fn no_spool_is_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(Spool::open(&dir.path().join("spool"))
        .await
        .expect("open")
        .is_none());
    remove(&dir.path().join("spool"))
        .await
        .expect("remove nothing");
}
