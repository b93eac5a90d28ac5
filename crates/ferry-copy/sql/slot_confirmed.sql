-- How far the source was told change capture holds Ferry's slot (NULL: no such slot).
-- $1: the slot's name.
SELECT confirmed_flush_lsn::text
  FROM pg_replication_slots
 WHERE slot_name = $1
