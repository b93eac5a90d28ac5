-- The key that names a table's rows: the primary key, else the replica identity index, else
-- the narrowest unique index over NOT NULL columns without expressions or predicate.
-- (PostgreSQL 10 has no indnkeyatts: Ferry reads indnatts there, which has no INCLUDE.)
SELECT ARRAY(SELECT a.attname::text
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.ord <= i.indnkeyatts
              ORDER BY k.ord) AS columns
  FROM pg_index i
 WHERE i.indrelid = $1::text::regclass
   AND i.indisunique
   AND i.indisvalid
   AND i.indpred IS NULL
   AND i.indexprs IS NULL
   AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) AS k(attnum)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                    WHERE NOT a.attnotnull)
 ORDER BY i.indisprimary DESC, i.indisreplident DESC, i.indnkeyatts, i.indexrelid
 LIMIT 1
