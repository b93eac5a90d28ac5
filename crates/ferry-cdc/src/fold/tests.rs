use bytes::Bytes;
use ferry_replication::pgoutput::{ColumnValue, TupleData};

use super::{row_key, Net, TableFold};

fn t(s: &str) -> ColumnValue {
    ColumnValue::Text(Bytes::copy_from_slice(s.as_bytes()))
}

const U: ColumnValue = ColumnValue::UnchangedToast;

fn tuple(values: &[ColumnValue]) -> TupleData {
    TupleData(values.to_vec())
}

fn key(s: &str) -> Vec<Bytes> {
    vec![Bytes::copy_from_slice(s.as_bytes())]
}

fn net(fold: TableFold) -> Net {
    fold.into_net()
}

fn inserts(rows: &[&[ColumnValue]]) -> Net {
    Net {
        inserts: rows.iter().map(|r| r.to_vec()).collect(),
        ..Net::default()
    }
}

fn updates(rows: &[&[ColumnValue]]) -> Net {
    Net {
        updates: rows.iter().map(|r| r.to_vec()).collect(),
        ..Net::default()
    }
}

#[test]
fn insert_then_updates_fold_to_one_insert_keeping_values_the_updates_did_not_send() {
    let mut f = TableFold::default();
    assert!(f.insert(Some(key("1")), &tuple(&[t("1"), t("big"), t("a")])));
    assert!(f.update(key("1"), key("1"), &tuple(&[t("1"), U, t("b")])));
    assert!(f.update(key("1"), key("1"), &tuple(&[t("1"), U, t("c")])));
    assert_eq!(net(f), inserts(&[&[t("1"), t("big"), t("c")]]));
}

#[test]
fn updates_of_an_existing_row_fold_to_one_update_of_what_they_wrote() {
    let mut f = TableFold::default();
    assert!(f.update(key("1"), key("1"), &tuple(&[t("1"), U, t("b")])));
    assert!(f.update(key("1"), key("1"), &tuple(&[t("1"), t("x"), U])));
    assert_eq!(net(f), updates(&[&[t("1"), t("x"), t("b")]]));
}

#[test]
fn insert_then_delete_is_nothing_and_delete_then_insert_is_an_update() {
    let mut f = TableFold::default();
    assert!(f.insert(Some(key("1")), &tuple(&[t("1"), t("a")])));
    assert!(f.delete(key("1")));
    assert!(f.delete(key("2")));
    assert!(f.insert(Some(key("2")), &tuple(&[t("2"), t("b")])));
    assert_eq!(net(f), updates(&[&[t("2"), t("b")]]));
}

#[test]
fn a_key_change_deletes_the_old_key_and_inserts_the_new_one() {
    let mut f = TableFold::default();
    assert!(f.update(key("1"), key("5"), &tuple(&[t("5"), t("a")])));
    let mut back = TableFold::default();
    assert!(back.update(key("1"), key("5"), &tuple(&[t("5"), t("a")])));
    assert_eq!(
        net(f),
        Net {
            deleted: vec![key("1")],
            ..inserts(&[&[t("5"), t("a")]])
        }
    );
    // Back again: the row is where it started, with the new values.
    assert!(back.update(key("5"), key("1"), &tuple(&[t("1"), t("b")])));
    assert_eq!(net(back), updates(&[&[t("1"), t("b")]]));
}

#[test]
fn what_cannot_be_folded_exactly_is_refused_and_leaves_the_run_unchanged() {
    let mut f = TableFold::default();
    assert!(f.insert(Some(key("1")), &tuple(&[t("1"), t("a")])));
    // A second insert of a live key, a change to a deleted row, an unsent value moving keys.
    assert!(!f.insert(Some(key("1")), &tuple(&[t("1"), t("b")])));
    assert!(f.delete(key("2")));
    assert!(!f.delete(key("2")));
    assert!(!f.update(key("2"), key("2"), &tuple(&[t("2"), t("c")])));
    assert!(!f.update(key("3"), key("4"), &tuple(&[t("4"), U])));
    assert!(!f.update(key("3"), key("1"), &tuple(&[t("1"), t("d")])));
    assert!(!f.insert(Some(key("9")), &tuple(&[t("9"), U])));
    assert_eq!(
        net(f),
        Net {
            deleted: vec![key("2")],
            ..inserts(&[&[t("1"), t("a")]])
        }
    );
}

#[test]
fn tables_without_a_key_keep_every_insert() {
    let mut f = TableFold::default();
    assert!(f.insert(None, &tuple(&[t("1")])));
    assert!(f.insert(None, &tuple(&[t("1")])));
    assert_eq!(net(f).inserts.len(), 2);
}

#[test]
fn a_key_column_without_text_has_no_row_key() {
    let row = tuple(&[t("1"), ColumnValue::Null, t("x")]);
    assert_eq!(
        row_key(&row, &[0, 2]),
        Some(vec![key("1")[0].clone(), key("x")[0].clone()])
    );
    assert_eq!(row_key(&row, &[1]), None);
    assert_eq!(row_key(&tuple(&[U]), &[0]), None);
}

#[test]
fn keys_that_differ_in_one_byte_spread_over_the_table() {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let build = BuildHasherDefault::<super::KeyHasher>::default();
    let buckets: std::collections::HashSet<u64> = (0..4096u32)
        .map(|i| build.hash_one(key(&format!("{:08}", 1_000_000 + i))) & 0xfff)
        .collect();
    // 4096 keys into 4096 buckets by the low bits: a good hash fills well over half.
    assert!(buckets.len() > 2000, "{} buckets used", buckets.len());
}
