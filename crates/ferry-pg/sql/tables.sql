-- Every table that holds or routes user data, with what preflight and copy need to know.
-- Extension members are left out: CREATE EXTENSION makes them on the target.
SELECT n.nspname                                   AS schema,
       c.relname                                   AS name,
       c.oid::int8                                 AS oid,
       c.relkind::text                             AS kind,
       c.relpersistence::text                      AS persistence,
       c.relispartition                            AS is_partition,
       c.relreplident::text                        AS replident,
       EXISTS (SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisprimary)   AS has_pk,
       EXISTS (SELECT 1 FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisreplident) AS has_identity_index,
       CASE WHEN c.relkind = 'r' THEN pg_table_size(c.oid) ELSE 0 END::int8 AS bytes,
       c.relpages::int8                            AS pages,
       GREATEST(c.reltuples, 0)::int8              AS est_rows,
       pg_has_role(c.relowner, 'USAGE')            AS owned,
       -- Every table this one inherits from or is a partition of, nearest first.
       ARRAY(WITH RECURSIVE up(oid, depth) AS (
                 SELECT i.inhparent, 1 FROM pg_inherits i WHERE i.inhrelid = c.oid
                 UNION ALL
                 SELECT i.inhparent, u.depth + 1 FROM pg_inherits i JOIN up u ON i.inhrelid = u.oid
             )
             SELECT a.nspname FROM up JOIN pg_class p ON p.oid = up.oid
               JOIN pg_namespace a ON a.oid = p.relnamespace ORDER BY up.depth)::text[] AS ancestor_schemas,
       ARRAY(WITH RECURSIVE up(oid, depth) AS (
                 SELECT i.inhparent, 1 FROM pg_inherits i WHERE i.inhrelid = c.oid
                 UNION ALL
                 SELECT i.inhparent, u.depth + 1 FROM pg_inherits i JOIN up u ON i.inhrelid = u.oid
             )
             SELECT p.relname FROM up JOIN pg_class p ON p.oid = up.oid ORDER BY up.depth)::text[] AS ancestor_names
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_toast'
   AND n.nspname !~ '^pg_temp'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 1, 2
