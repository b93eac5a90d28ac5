//! The source fence on a real cluster: other roles cannot connect while it stands, an idle
//! session is ended at once, a session in a transaction may commit first, Ferry's role keeps
//! connecting, and undoing it leaves the database's privileges exactly as they were.

use std::time::Duration;

use ferry_flow::fence;
use ferry_testkit::{cluster, TestDb};
use tokio_postgres::{Client, NoTls};

async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Who may connect, as `grantee:grantable` (the effective ACL, defaults included).
async fn connect_acl(db: &Client) -> Vec<String> {
    db.query(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END \
                || ':' || a.is_grantable \
           FROM pg_database d, aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a \
          WHERE d.datname = current_database() ORDER BY 1",
        &[],
    )
    .await
    .expect("read the ACL")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn the_fence_keeps_other_roles_out_drains_them_and_undoes_exactly() {
    let db = TestDb::create(cluster()).await;
    let admin = db.client().await;
    let (app, helper, keeper) = (
        format!("{}_app", db.name()),
        format!("{}_helper", db.name()),
        format!("{}_ferry", db.name()),
    );
    admin
        .batch_execute(&format!(
            "CREATE ROLE {app} LOGIN; CREATE ROLE {helper} LOGIN; CREATE ROLE {keeper} LOGIN;
             GRANT CONNECT ON DATABASE {db} TO {helper} WITH GRANT OPTION;
             CREATE TABLE t (id int PRIMARY KEY); GRANT ALL ON t TO {app};",
            db = db.name()
        ))
        .await
        .expect("roles");
    let as_role = |role: &str| {
        db.conninfo()
            .replace("user=postgres", &format!("user={role}"))
    };
    let before = connect_acl(&admin).await;

    let idle = connect(&as_role(&app)).await.expect("app connects");
    let busy = connect(&as_role(&app)).await.expect("app connects");
    busy.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
        .await
        .expect("open transaction");

    let record = fence::plan(&admin, &keeper).await.expect("plan");
    assert!(record.granted_keep, "{record:?}");
    assert!(
        record.revoked.iter().any(|g| g.grantee == "PUBLIC")
            && record
                .revoked
                .iter()
                .any(|g| g.grantee == helper && g.grantable),
        "{record:?}"
    );
    fence::apply(&admin, &record).await.expect("fence");

    // New connections: refused for others, Ferry's role still gets in.
    let refused = connect(&as_role(&app)).await;
    assert!(refused.is_err(), "app connected through the fence");
    assert!(connect(&as_role(&helper)).await.is_err());
    connect(&as_role(&keeper))
        .await
        .expect("Ferry's role connects");

    // The drain ends the idle session at once and lets the open transaction commit.
    let drain = {
        let admin = db.client().await;
        let keeper = keeper.clone();
        tokio::spawn(async move { fence::drain(&admin, &keeper, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    busy.batch_execute("COMMIT")
        .await
        .expect("the open transaction commits");
    let drained = drain.await.expect("join").expect("drain");
    // The two app sessions, and this test's own admin session (not Ferry's role either).
    assert_eq!(
        drained,
        fence::Drained {
            idle: 3,
            in_transaction: 0
        }
    );
    assert!(
        idle.simple_query("SELECT 1").await.is_err(),
        "idle session survived"
    );
    let admin = db.client().await;
    let kept: i64 = admin
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(kept, 1, "the transaction that finished in time is kept");

    fence::undo(&admin, &record).await.expect("undo");
    assert_eq!(
        connect_acl(&admin).await,
        before,
        "privileges not restored exactly"
    );
    connect(&as_role(&app)).await.expect("app connects again");
    admin
        .batch_execute(&format!(
            "DROP TABLE t; REVOKE ALL ON DATABASE {db} FROM {helper} CASCADE; \
             DROP ROLE {app}; DROP ROLE {helper}; DROP ROLE {keeper};",
            db = db.name()
        ))
        .await
        .expect("clean up roles");
}
