//! Catalog reads shared by preflight and copy. The SQL lives in `sql/*.sql`, readable and
//! runnable in psql.

use ferry_model::TableName;
use tokio_postgres::Client;

use crate::{sql_error, PgError};

/// How a table identifies its rows to logical replication (`pg_class.relreplident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// `REPLICA IDENTITY DEFAULT` with a primary key.
    PrimaryKey,
    /// `REPLICA IDENTITY USING INDEX`.
    Index,
    /// `REPLICA IDENTITY FULL`.
    Full,
    /// Default identity without a primary key, `REPLICA IDENTITY NOTHING`, or an identity
    /// index that is gone: UPDATE and DELETE cannot be published.
    None,
}

/// One table as the catalog describes it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub name: TableName,
    pub oid: u32,
    /// `true` for a partitioned parent (holds no rows itself).
    pub partitioned: bool,
    pub is_partition: bool,
    pub unlogged: bool,
    pub identity: Identity,
    /// Heap plus TOAST size in bytes.
    pub bytes: u64,
    pub pages: u64,
    pub est_rows: u64,
    /// Whether the connected role owns (or is a member of the owner of) the table.
    pub owned: bool,
    /// Tables it inherits from or is a partition of, nearest first.
    pub ancestors: Vec<TableName>,
}

impl TableInfo {
    /// True when the table's rows are stored in it (not a partitioned parent).
    pub fn holds_rows(&self) -> bool {
        !self.partitioned
    }
}

/// Every user table of the connected database.
pub async fn tables(client: &Client) -> Result<Vec<TableInfo>, PgError> {
    let rows = client
        .query(include_str!("../sql/tables.sql"), &[])
        .await
        .map_err(sql_error("listing the tables"))?;
    rows.iter()
        .map(|r| {
            let kind: String = r
                .try_get("kind")
                .map_err(sql_error("reading the table list"))?;
            let replident: String = r
                .try_get("replident")
                .map_err(sql_error("reading the table list"))?;
            let has_pk: bool = r
                .try_get("has_pk")
                .map_err(sql_error("reading the table list"))?;
            let has_index: bool = r
                .try_get("has_identity_index")
                .map_err(sql_error("reading the table list"))?;
            let identity = match replident.as_str() {
                "f" => Identity::Full,
                "d" if has_pk => Identity::PrimaryKey,
                "i" if has_index => Identity::Index,
                _ => Identity::None,
            };
            let persistence: String = r
                .try_get("persistence")
                .map_err(sql_error("reading the table list"))?;
            let oid: i64 = r
                .try_get("oid")
                .map_err(sql_error("reading the table list"))?;
            let int = |c: &str| -> Result<u64, PgError> {
                let v: i64 = r.try_get(c).map_err(sql_error("reading the table list"))?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            Ok(TableInfo {
                name: TableName::new(
                    r.try_get::<_, String>("schema")
                        .map_err(sql_error("reading the table list"))?,
                    r.try_get::<_, String>("name")
                        .map_err(sql_error("reading the table list"))?,
                ),
                oid: u32::try_from(oid).unwrap_or(0),
                partitioned: kind == "p",
                is_partition: r
                    .try_get("is_partition")
                    .map_err(sql_error("reading the table list"))?,
                unlogged: persistence == "u",
                identity,
                bytes: int("bytes")?,
                pages: int("pages")?,
                est_rows: int("est_rows")?,
                ancestors: {
                    let schemas: Vec<String> = r
                        .try_get("ancestor_schemas")
                        .map_err(sql_error("reading the table list"))?;
                    let names: Vec<String> = r
                        .try_get("ancestor_names")
                        .map_err(sql_error("reading the table list"))?;
                    schemas
                        .into_iter()
                        .zip(names)
                        .map(|(s, n)| TableName::new(s, n))
                        .collect()
                },
                owned: r
                    .try_get("owned")
                    .map_err(sql_error("reading the table list"))?,
            })
        })
        .collect()
}

/// A column COPY moves.
#[derive(Debug, Clone)]
pub struct CopyColumn {
    pub name: String,
    pub binary_ok: bool,
}

/// The columns COPY moves for the table with this OID, in order.
pub async fn copy_columns(client: &Client, table_oid: u32) -> Result<Vec<CopyColumn>, PgError> {
    let rows = client
        .query(include_str!("../sql/columns.sql"), &[&i64::from(table_oid)])
        .await
        .map_err(sql_error("listing a table's columns"))?;
    rows.iter()
        .map(|r| {
            Ok(CopyColumn {
                name: r.try_get("name").map_err(sql_error("reading columns"))?,
                binary_ok: r
                    .try_get("binary_ok")
                    .map_err(sql_error("reading columns"))?,
            })
        })
        .collect()
}

/// A source role the schema needs, with the attributes Ferry may recreate (never a password,
/// never SUPERUSER, REPLICATION or BYPASSRLS).
#[derive(Debug, Clone)]
pub struct RoleInfo {
    pub name: String,
    pub can_login: bool,
    pub inherit: bool,
    pub create_db: bool,
    pub create_role: bool,
}

/// `SHOW`-style read of one setting.
pub async fn setting(client: &Client, name: &str) -> Result<String, PgError> {
    let row = client
        .query_one("SELECT current_setting($1)", &[&name])
        .await
        .map_err(sql_error(format!("reading the setting {name}")))?;
    row.try_get(0)
        .map_err(sql_error(format!("reading the setting {name}")))
}

/// The server's `server_version_num` (e.g. 150004).
pub async fn version_num(client: &Client) -> Result<u32, PgError> {
    let v = setting(client, "server_version_num").await?;
    v.parse().map_err(|_| PgError::Sql {
        what: "reading server_version_num".into(),
        detail: format!("unexpected value {v:?}"),
        code: None,
    })
}

/// The cluster's `system_identifier`, which tells one cluster from another.
pub async fn system_identifier(client: &Client) -> Result<String, PgError> {
    let row = client
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .map_err(sql_error("reading the system identifier"))?;
    row.try_get(0)
        .map_err(sql_error("reading the system identifier"))
}
