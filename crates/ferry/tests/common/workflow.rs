//! Helpers of the `ferry migrate` tests: a pgbench database written by an application role
//! of its own (not Ferry's), and a fingerprint of everything a rollback must give back.

use std::process::{Child, Stdio};

use ferry_testkit::TestDb;
use tokio_postgres::Client;

/// The spec lines of a quick workflow: a 1 s lag gate held for 2 s, a short drain.
pub const QUICK: &str = "[tables]\nwithout_identity = \"append_only\"\n\n[sync]\nmax_lag = \"1s\"\nsustained = \"2s\"\n\n[cutover]\ndrain_timeout = \"2s\"\n";

/// `pgbench -i` at `scale` on `db`, and a login role `<db>_app` that may read and write
/// its tables (the application: never the role Ferry connects as). Returns the role.
pub async fn pgbench_database(db: &TestDb, scale: u32) -> String {
    let status = pgbench()
        .args(["-i", "-q", "-s", &scale.to_string(), "-d"])
        .arg(db.conninfo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pgbench -i");
    assert!(status.success(), "pgbench -i failed");
    let role = format!("{}_app", db.name());
    db.execute_batch(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}; \
         CREATE TABLE orders (id bigserial PRIMARY KEY, note text); \
         GRANT INSERT, SELECT ON orders TO {role}; GRANT USAGE ON SEQUENCE orders_id_seq TO {role};"
    ))
    .await;
    role
}

/// `db`'s conninfo, connecting as `role`.
pub fn as_role(db: &TestDb, role: &str) -> String {
    db.conninfo()
        .split_whitespace()
        .map(|kv| {
            if kv.starts_with("user=") {
                format!("user={role}")
            } else {
                kv.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `pgbench -n -c <clients> -R <rate>` against `conninfo` for up to `seconds` (it stops
/// early once its sessions are ended by a fence). The rate keeps a debug build's apply and
/// validation from taking the whole machine.
pub fn pgbench_load(conninfo: &str, clients: u32, rate: u32, seconds: u32) -> Child {
    pgbench()
        .args(["-n", "-c", &clients.to_string(), "-R", &rate.to_string()])
        .args(["-T", &seconds.to_string(), "-d"])
        .arg(conninfo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pgbench")
}

fn pgbench() -> std::process::Command {
    ferry_pg::binaries::client_tool("pgbench", 10)
        .expect("pgbench is installed")
        .command()
}

pub async fn count(db: &Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count rows")
        .get(0)
}

/// Everything of the source's a migration touches or could touch, as text: who may connect
/// to the database (the effective ACL), the tables' privileges and replica identities, the
/// database's and roles' settings, its replication slots and its publications.
pub async fn source_fingerprint(db: &Client) -> Vec<String> {
    let queries = [
        "SELECT 'connect ' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END \
                || ' ' || a.privilege_type || ' ' || a.is_grantable::text \
           FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
          WHERE d.datname = current_database()",
        "SELECT 'table ' || c.oid::regclass || ' ' || COALESCE(c.relacl::text, 'default') \
                || ' identity ' || c.relreplident::text \
           FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace",
        "SELECT 'setting ' || s.setdatabase::text || ' ' || s.setrole::text || ' ' \
                || array_to_string(s.setconfig, ',') FROM pg_db_role_setting s \
          WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))",
        "SELECT 'server ' || name || '=' || setting FROM pg_settings \
          WHERE source NOT IN ('default', 'client', 'session', 'override')",
        "SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()",
        "SELECT 'publication ' || pubname FROM pg_publication",
    ];
    let mut all = Vec::new();
    for q in queries {
        for r in db.query(q, &[]).await.expect("fingerprint query") {
            all.push(r.get::<_, String>(0));
        }
    }
    all.sort();
    all
}
