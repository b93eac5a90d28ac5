-- Roles the schema of this database names: owners of its objects, grantees in its ACLs,
-- policy roles, default-ACL roles and large-object owners. PUBLIC (oid 0) is not a role.
WITH used(oid) AS (
    SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    UNION SELECT n.nspowner FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
    UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION SELECT t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relacl IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n
     WHERE n.nspacl IS NOT NULL AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    UNION SELECT unnest(pol.polroles) FROM pg_policy pol
    UNION SELECT d.defaclrole FROM pg_default_acl d
    UNION SELECT m.lomowner FROM pg_largeobject_metadata m
)
SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreatedb, r.rolcreaterole
  FROM pg_roles r JOIN used u ON u.oid = r.oid
 ORDER BY 1
