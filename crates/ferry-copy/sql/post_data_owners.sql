-- The table each post-data object belongs to, for the objects named in a dump's TOC:
-- indexes, constraints (and the referenced table of foreign keys), triggers, policies, rules.
SELECT 1259::int8 AS catalog, indexrelid::int8 AS oid, indrelid::int8 AS rel, 0::int8 AS other
  FROM pg_index WHERE indexrelid::int8 = ANY($1)
UNION ALL
SELECT 2606, oid::int8, conrelid::int8, confrelid::int8
  FROM pg_constraint WHERE oid::int8 = ANY($1)
UNION ALL
SELECT 2620, oid::int8, tgrelid::int8, 0 FROM pg_trigger WHERE oid::int8 = ANY($1)
UNION ALL
SELECT 3256, oid::int8, polrelid::int8, 0 FROM pg_policy WHERE oid::int8 = ANY($1)
UNION ALL
SELECT 2618, oid::int8, ev_class::int8, 0 FROM pg_rewrite WHERE oid::int8 = ANY($1)
