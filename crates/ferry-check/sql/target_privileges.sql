-- What the target role may do: $1 are the roles that will own the restored objects, $2 those
-- of them that will own objects in schema public.
SELECT current_user::text                                                  AS role,
       current_database()::text                                            AS database,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)        AS is_superuser,
       has_database_privilege(current_database(), 'CREATE')                AS can_create_schemas,
       (SELECT has_schema_privilege(n.oid, 'CREATE') FROM pg_namespace n
         WHERE n.nspname = 'public')                                       AS can_create_in_public,
       ARRAY(SELECT r.rolname::text FROM pg_roles r
              WHERE r.rolname = ANY($1::text[]) AND NOT r.rolsuper
                AND NOT pg_has_role(current_user, r.oid, 'MEMBER')
              ORDER BY 1)                                                  AS not_member_of,
       ARRAY(SELECT r.rolname::text FROM pg_roles r
              WHERE r.rolname = ANY($1::text[]) AND r.rolsuper
              ORDER BY 1)                                                  AS superuser_owners,
       ARRAY(SELECT r.rolname::text FROM pg_roles r, pg_namespace n
              WHERE r.rolname = ANY($2::text[]) AND NOT r.rolsuper
                AND n.nspname = 'public' AND NOT has_schema_privilege(r.oid, n.oid, 'CREATE')
              ORDER BY 1)                                                  AS public_owners_without_create
