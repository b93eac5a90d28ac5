-- The columns COPY moves (no dropped, no generated ones), in order, and whether each can
-- travel in binary COPY format between any two servers: only built-in types with send and
-- receive functions whose binary form holds no OIDs (reg* types do; user types' OIDs differ
-- between clusters, and arrays and composites carry them).
SELECT a.attname AS name,
       (a.atttypid < 16384
        AND t.typsend::oid <> 0 AND t.typreceive::oid <> 0
        AND t.typname !~ '^_?reg'
        AND (t.typelem = 0 OR EXISTS (SELECT 1 FROM pg_type e
                                       WHERE e.oid = t.typelem
                                         AND e.typsend::oid <> 0
                                         AND e.typreceive::oid <> 0))) AS binary_ok
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = $1::int8::oid
   AND a.attnum > 0
   AND NOT a.attisdropped
   AND coalesce(to_jsonb(a) ->> 'attgenerated', '') = ''
 ORDER BY a.attnum
