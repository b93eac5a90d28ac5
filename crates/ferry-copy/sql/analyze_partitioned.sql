-- Partitioned parents hold no rows, so analyzing their partitions leaves them without
-- statistics; analyze each (its partitions are sampled again through it).
DO $$
DECLARE
    parent regclass;
BEGIN
    FOR parent IN
        SELECT c.oid::regclass FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'p'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    LOOP
        EXECUTE format('ANALYZE %s', parent);
    END LOOP;
END
$$;
