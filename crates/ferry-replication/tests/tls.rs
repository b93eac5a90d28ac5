//! TLS as libpq users expect it, on a real server that only accepts TLS over TCP: sslmode
//! disable is refused, require and verify-full connect (normal and replication sessions),
//! verify-full against the wrong root certificate fails with a TLS error.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use ferry_pg::Connector;
use ferry_replication::ReplicationConnection;
use ferry_spec::{ConnInfo, Endpoint};

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("command runs");
    assert!(status.success(), "{cmd:?} failed");
}

/// A self-signed certificate for 127.0.0.1 and its key, readable by the server's OS user.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .stderr(std::process::Stdio::null()));
    run(Command::new("chmod").arg("600").arg(&key));
    run(Command::new("chmod").arg("644").arg(&crt));
    (crt, key)
}

fn connector(cluster: &LocalCluster, extra: &str) -> Result<Connector, ferry_pg::PgError> {
    let dsn = format!("{} {extra}", cluster.conninfo("postgres"));
    let endpoint = Endpoint {
        conninfo: ConnInfo::parse(&dsn).expect("dsn"),
        password_env: None,
    };
    Connector::new("source", &endpoint)
}

#[tokio::test]
async fn tls_modes_behave_like_libpq() {
    // The shared test cluster makes sure the servers' OS user exists before we hand it the key.
    let _ = ferry_testkit::cluster();
    let dir = std::env::temp_dir().join(format!("ferry-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    run(Command::new("chmod").arg("755").arg(&dir));
    let (crt, key) = certificate(&dir, "server");
    let (other_crt, _) = certificate(&dir, "other");
    run(Command::new("chown").arg("ferrypg").arg(&key));
    let settings = vec![
        ("ssl".to_owned(), "on".to_owned()),
        ("ssl_cert_file".to_owned(), crt.display().to_string()),
        ("ssl_key_file".to_owned(), key.display().to_string()),
    ];
    let cluster = LocalCluster::start(&ClusterOptions {
        name: "tls".into(),
        settings,
        ..ClusterOptions::default()
    })
    .expect("cluster with TLS starts");

    // Only TLS over TCP from now on, for normal and replication sessions.
    let admin = connector(&cluster, "sslmode=require")
        .expect("connector")
        .connect()
        .await
        .expect("require connects");
    std::fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        "local all all trust\nlocal replication all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n",
    )
    .expect("write pg_hba.conf");
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .expect("reload");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let plain = connector(&cluster, "sslmode=disable")
        .expect("connector")
        .connect()
        .await;
    assert!(
        plain.is_err(),
        "a plain-text session must be refused by hostssl-only pg_hba"
    );

    let root = format!("sslmode=verify-full sslrootcert={}", crt.display());
    let verified = connector(&cluster, &root).expect("connector");
    let client = verified
        .connect()
        .await
        .expect("verify-full with the right root connects");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the session is encrypted");

    let mut repl = ReplicationConnection::connect(&verified)
        .await
        .expect("replication session over TLS");
    let system = repl.identify_system().await.expect("IDENTIFY_SYSTEM");
    assert!(!system.system_id.is_empty());

    let wrong = format!("sslmode=verify-full sslrootcert={}", other_crt.display());
    let err = connector(&cluster, &wrong)
        .expect("connector")
        .connect()
        .await
        .expect_err("wrong root must fail");
    let message = err.to_string();
    assert!(
        message.contains("TLS") || message.contains("certificate"),
        "unhelpful error: {message}"
    );
    let err = ReplicationConnection::connect(&connector(&cluster, &wrong).expect("connector"))
        .await
        .err()
        .expect("replication with the wrong root must fail");
    assert!(
        err.to_string().contains("TLS handshake"),
        "unhelpful error: {err}"
    );

    let missing = connector(
        &cluster,
        "sslmode=verify-ca sslrootcert=/nonexistent/root.crt",
    );
    assert!(missing.is_err_and(|e| e.to_string().contains("sslrootcert")));
    let _ = std::fs::remove_dir_all(&dir);
}
