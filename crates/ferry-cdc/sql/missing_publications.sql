-- Which of Ferry's publications ($1, text[]) are not on the source, in the given order.
SELECT p.name
  FROM unnest($1::text[]) WITH ORDINALITY AS p (name, n)
 WHERE NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = p.name)
 ORDER BY p.n
