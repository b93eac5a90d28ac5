-- Ferry's slot as change capture needs it before streaming: whether it still exists, whether
-- PostgreSQL invalidated it (wal_status 'lost', PostgreSQL 13+), and how far the source was
-- told the target is (confirmed_flush_lsn). $1: the slot's name.
SELECT wal_status,
       confirmed_flush_lsn::text
  FROM pg_replication_slots
 WHERE slot_name = $1
