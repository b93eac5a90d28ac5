-- What restoring this database's schema asks of the role that restores it: the schemas it
-- creates ('schema'), whether anything goes into the existing schema public ('public'), the
-- roles it hands objects to with ALTER ... OWNER ('owner'), and those of them that get objects
-- in public ('public_owner': a new owner needs CREATE on the object's schema). Extension
-- members are left out: CREATE EXTENSION makes them.
WITH objects(nsp, owner) AS (
    SELECT c.relnamespace, c.relowner FROM pg_class c
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT p.pronamespace, p.proowner FROM pg_proc p
     WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                        AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT t.typnamespace, t.typowner FROM pg_type t
     WHERE t.typtype IN ('c', 'd', 'e', 'r', 'm') AND t.typrelid = 0
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                        AND d.objid = t.oid AND d.deptype = 'e')
),
user_objects AS (
    SELECT n.nspname, o.owner FROM objects o JOIN pg_namespace n ON n.oid = o.nsp
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp'
),
user_schemas AS (
    SELECT n.nspname, n.nspowner FROM pg_namespace n
     WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname !~ '^pg_'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                        AND d.objid = n.oid AND d.deptype = 'e')
)
SELECT 'schema' AS kind, nspname::text AS name FROM user_schemas
UNION
SELECT 'public', 'public' FROM user_objects WHERE nspname = 'public'
UNION
SELECT 'owner', r.rolname::text
  FROM (SELECT owner FROM user_objects UNION SELECT nspowner FROM user_schemas) o
  JOIN pg_roles r ON r.oid = o.owner
UNION
SELECT 'public_owner', r.rolname::text
  FROM user_objects o JOIN pg_roles r ON r.oid = o.owner
 WHERE o.nspname = 'public'
ORDER BY 1, 2
