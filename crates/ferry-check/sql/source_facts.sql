-- One row of what preflight asks of the source.
SELECT current_setting('server_version_num')::int                        AS version_num,
       current_setting('server_version')                                 AS version,
       current_setting('wal_level')                                      AS wal_level,
       current_setting('max_replication_slots')::int
         - (SELECT count(*) FROM pg_replication_slots)::int              AS free_slots,
       current_setting('max_wal_senders')::int
         - (SELECT count(*) FROM pg_stat_replication)::int               AS free_senders,
       (SELECT rolreplication OR rolsuper FROM pg_roles
         WHERE rolname = current_user)                                   AS can_replicate,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)     AS is_superuser,
       has_database_privilege(current_database(), 'CREATE')              AS can_create,
       current_user::text                                                AS role
