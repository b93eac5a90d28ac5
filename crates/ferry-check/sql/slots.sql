-- Slots other than Ferry's that nobody reads, with the WAL each holds back on the source.
SELECT slot_name::text,
       slot_type::text,
       pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))::text AS retained
  FROM pg_replication_slots
 WHERE NOT active
   AND restart_lsn IS NOT NULL
   AND slot_name <> $1
 ORDER BY pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) DESC
