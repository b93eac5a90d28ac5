-- Tables of varied types for `ferry demo`, beside pgbench's.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE "Mixed Case" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feeling mood NOT NULL,
    tags text[],
    doc jsonb,
    raw bytea,
    amount numeric(30, 10),
    at timestamptz,
    span int4range,
    addr inet,
    n positive,
    doubled bigint GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Mixed Case" (feeling, tags, doc, raw, amount, at, span, addr, n)
SELECT (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3],
       ARRAY['a' || g, 'b,"' || g],
       jsonb_build_object('g', g, 'nested', jsonb_build_array(g, g * 2)),
       decode(lpad(to_hex(g), 8, '0') || '00ff', 'hex'),
       g * 1234567.0123456789,
       CASE WHEN g % 100 = 0 THEN 'infinity'::timestamptz ELSE now() - g * interval '1 minute' END,
       int4range(g, g + 10),
       ('10.0.' || (g % 250) || '.' || (g % 200))::inet,
       1 + g
  FROM generate_series(1, 50000) g;
CREATE INDEX mixed_case_doc ON "Mixed Case" USING gin (doc);
CREATE TABLE big_values (id int PRIMARY KEY, body text);
INSERT INTO big_values SELECT g, repeat(md5(g::text), 40000) FROM generate_series(1, 20) g;
CREATE MATERIALIZED VIEW feelings AS SELECT feeling, count(*) FROM "Mixed Case" GROUP BY 1;
