-- The columns of one table as a client reads them, in order: name, type (as format_type
-- writes it), the type's name for the comparison rules, and the collation of text-like
-- columns (the database's own when the column uses the default).
SELECT a.attname::text                                  AS name,
       format_type(a.atttypid, a.atttypmod)             AS type,
       t.typname::text                                  AS type_name,
       CASE WHEN a.attcollation = 0 THEN NULL
            WHEN co.collname = 'default' THEN (SELECT datcollate::text FROM pg_database
                                                WHERE datname = current_database())
            ELSE co.collname::text END                  AS collation
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attrelid = $1::text::regclass
   AND a.attnum > 0
   AND NOT a.attisdropped
 ORDER BY a.attnum
