-- Fills the (empty, unindexed) Daylog tables with :n journal entries, server-side and set-based.
-- Run by generate.sh in one psql session, right after it COPYed words.txt into pg_temp.vocab_in.
-- psql variables: n (entries), seed, started (generate.sh's start, epoch seconds, for progress).
--
-- Determinism: every "random" choice is a hash of (seed, stream, row keys) rather than random()
-- after setseed(): the result then depends neither on execution order nor on the plan, and
-- the same seed gives the same rows, uuids and text on any server.
--
-- Text: words drawn from words.txt with Zipf weights make a pool of sentences (n of them),
-- grouped into paragraphs, and a pool of short phrases (n/2); blocks pick paragraphs, sentences
-- and runs of phrases by hash. A pool item recurs only every few hundred KB or more (MBs at
-- large n), far outside gzip's 32 KiB window, so the data compresses like prose made of a few
-- thousand words, not like repeats.
\set ON_ERROR_STOP on
\set QUIET on
SET synchronous_commit = off;
SET work_mem = '256MB';
SET client_min_messages = warning;
SET jit = off;  -- compiling these big expressions costs ~1 s, more than it saves

SELECT greatest(ceil(:n / 100.0), 1)::int AS nusers,  -- ~100 entries per user
       greatest(:n, 5000) AS nsent,                    -- sentence pool
       greatest(:n / 2, 2000) AS nphr,                 -- phrase pool (titles, headers, items)
       1.0 AS zipf                                     -- Zipf exponent of the word draw
\gset

-- h(stream, a, b): deterministic pseudo-random integer in [0, 2^31); u(): the same in [0, 1).
-- Plain SQL functions, so the planner inlines them.
SELECT format($f$
CREATE FUNCTION pg_temp.h(s int, a bigint, b int) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT hashint8extended(a * 65536 + b, %1$s::bigint * 64 + s) & 2147483647';
$f$, :seed) \gexec
CREATE FUNCTION pg_temp.u(s int, a bigint, b int) RETURNS float8
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT pg_temp.h(s, a, b)::float8 / 2147483648';
-- Version-4-shaped uuid for (kind, number): 1 users, 2 tags, 3 entries.
SELECT format($f$
CREATE FUNCTION pg_temp.uid(k int, n bigint) RETURNS uuid
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $b$SELECT overlay(overlay(md5('%1$s:' || k || ':' || n) placing '4' from 13)
                         placing substr('89ab', (n %% 4)::int + 1, 1) from 17)::uuid$b$;
$f$, :seed) \gexec
-- EditorJS block id: 10 characters of URL-safe base64.
CREATE FUNCTION pg_temp.block_id(x bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$SELECT translate(left(encode(int8send(pg_temp.h(9, x, 0) * 2147483648 + pg_temp.h(9, x, 1)), 'base64'), 10), '+/', '-_')$$;
-- The author of entry e: skewed, a few heavy writers and a long tail.
SELECT format($f$
CREATE FUNCTION pg_temp.entry_user(e bigint) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT least(%1$s, 1 + floor(%1$s * power(pg_temp.u(10, e, 1), 1.4))::int)';
$f$, :nusers) \gexec
-- Number of tags user u owns.
CREATE FUNCTION pg_temp.user_tags(u bigint) RETURNS int
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT 3 + (pg_temp.h(30, u, 0) % 10)::int';

-- Word lists; immutable and argument-free, so each call folds to a constant at plan time.
CREATE FUNCTION pg_temp.first_names() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ARRAY['James','Mary','Robert','Patricia','John','Jennifer','Michael','Linda','David','Elizabeth',
    'William','Barbara','Richard','Susan','Joseph','Jessica','Thomas','Sarah','Charles','Karen',
    'Daniel','Lisa','Matthew','Nancy','Anthony','Betty','Mark','Sandra','Paul','Ashley','Steven',
    'Emily','Andrew','Donna','Joshua','Michelle','Kevin','Carol','Brian','Amanda','George','Melissa',
    'Timothy','Deborah','Ronald','Laura','Jason','Rebecca','Ryan','Sharon','Jacob','Cynthia',
    'Nora','Leo','Maya','Omar','Ines','Yuki','Arjun','Chloe','Mateo','Zoe','Ravi','Elena']$$;
CREATE FUNCTION pg_temp.last_names() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Rodriguez','Martinez',
    'Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas','Taylor','Moore','Jackson','Martin',
    'Lee','Perez','Thompson','White','Harris','Sanchez','Clark','Ramirez','Lewis','Robinson','Walker',
    'Young','Allen','King','Wright','Scott','Torres','Nguyen','Hill','Flores','Green','Adams',
    'Nelson','Baker','Hall','Rivera','Campbell','Mitchell','Carter','Roberts','Kowalski','Novak',
    'Silva','Rossi','Muller','Schmidt','Dubois','Tanaka','Kim','Patel','Singh','Cohen','Ivanova','Okafor']$$;
CREATE FUNCTION pg_temp.places() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ARRAY['London','Paris','Lisbon','Berlin','Tokyo','Chicago','Boston','Seattle','Denver','Austin',
    'Madrid','Rome','Vienna','Prague','Oslo','Dublin','Toronto','Montreal','Sydney','Melbourne',
    'Portland','Brooklyn','Kyoto','Porto','Seville','Edinburgh','Amsterdam','Copenhagen','Helsinki',
    'Lyon','Munich','Zurich']$$;
-- 61 names, a prime: see the tags insert.
CREATE FUNCTION pg_temp.tag_names() RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ARRAY['work','family','travel','health','gratitude','ideas','reading','books','fitness','running',
    'cooking','recipes','music','movies','dreams','goals','reflection','mood','therapy',
    'meditation','sleep','weekend','vacation','kids','parenting','friends','school','learning',
    'programming','projects','garden','nature','hiking','photography','art','writing','poetry',
    'finance','budget','home','career','meetings','todo','plans','summer','winter','holidays',
    'birthday','pets','coffee','food','morning-pages','evening','daily','weekly-review',
    'book-notes','quotes','podcasts','cycling','yoga','side-project']$$;

\set step 'SELECT format(''  %-22s %7s s'', :''label'', round(extract(epoch FROM clock_timestamp()) - :started, 1))'

-- ------------------------------------------------------------------ vocabulary
-- 2^18 slots, each word owning a share proportional to 1/(rank + 2.7)^zipf (numeric: the
-- cumulative sum ends at exactly 1, so every slot is owned).
CREATE TEMP TABLE slot AS
WITH w AS (
    SELECT rank, word, 1 / power(rank + 2.7, :zipf) AS wt FROM pg_temp.vocab_in
), c AS (
    SELECT word, wt, sum(wt) OVER (ORDER BY rank) AS hi, sum(wt) OVER () AS tot FROM w
)
SELECT g AS slot, word
FROM c, generate_series(floor((hi - wt) / tot * 262144)::int, floor(hi / tot * 262144)::int - 1) g;
ANALYZE slot;

-- ------------------------------------------------------------------ text pools
-- Sentences of 4-24 words (mean 14): 4% of the words are numbers, times, names or places;
-- an occasional comma, mostly full stops.
CREATE TEMP TABLE sent AS
SELECT s AS id,
       upper(left(t, 1)) || substr(t, 2) ||
       (CASE pg_temp.h(2, s, 0) % 25 WHEN 0 THEN '!' WHEN 1 THEN '?' ELSE '.' END) AS txt
FROM (
    SELECT s, string_agg(CASE pg_temp.h(7, s, k) % 100
                         WHEN 0 THEN (pg_temp.h(8, s, k) % 12 + 1)::text                      -- 3
                         WHEN 1 THEN (pg_temp.h(8, s, k) % 14 + 6) || ':' ||                   -- 7:45
                                     lpad((pg_temp.h(8, s, k) / 14 % 12 * 5)::text, 2, '0')
                         WHEN 2 THEN (pg_temp.first_names())[1 + pg_temp.h(8, s, k) % 64]      -- Sarah
                         WHEN 3 THEN (pg_temp.places())[1 + pg_temp.h(8, s, k) % 32]           -- Lisbon
                         ELSE slot.word END
                         || CASE WHEN k < len AND pg_temp.h(3, s, k) % 12 = 0 THEN ',' ELSE '' END,
                         ' ' ORDER BY k) AS t
    FROM (SELECT s, (4 + pg_temp.h(1, s, 0) % 11 + pg_temp.h(1, s, 1) % 11)::int AS len
          FROM generate_series(0, :nsent - 1) s) ss,
         generate_series(1, len) k,
         slot
    WHERE slot.slot = pg_temp.h(4, s, k) % 262144
    GROUP BY s
) x;
ALTER TABLE sent ADD PRIMARY KEY (id);
ANALYZE sent;

-- Paragraphs: consecutive sentences, cut into disjoint runs (a run ends with probability 1/3
-- after each sentence: 1 to ~10 sentences, mean 3). Pre-joined so that a paragraph block costs
-- one index lookup instead of a range scan and an aggregate per block.
CREATE TEMP TABLE para AS
SELECT g::int AS id, string_agg(txt, ' ' ORDER BY id) AS txt
FROM (SELECT id, txt,
             sum(CASE WHEN id = 0 OR pg_temp.h(13, id, 0) % 3 = 0 THEN 1 ELSE 0 END) OVER (ORDER BY id) - 1 AS g
      FROM sent) x
GROUP BY g;
ALTER TABLE para ADD PRIMARY KEY (id);
ANALYZE para;
SELECT count(*) AS npara FROM para \gset

-- Phrases of 2-8 words, capitalized, no final punctuation.
CREATE TEMP TABLE phr AS
SELECT s AS id, upper(left(t, 1)) || substr(t, 2) AS txt
FROM (
    SELECT s, string_agg(slot.word, ' ' ORDER BY k) AS t
    FROM (SELECT s, (2 + pg_temp.h(5, s, 0) % 4 + pg_temp.h(5, s, 1) % 4)::int AS len
          FROM generate_series(0, :nphr - 1) s) ss,
         generate_series(1, len) k,
         slot
    WHERE slot.slot = pg_temp.h(6, s, k) % 262144
    GROUP BY s
) x;
ALTER TABLE phr ADD PRIMARY KEY (id);
ANALYZE phr;
\set label 'text pools'
:step \g (tuples_only=on format=unaligned)

-- ------------------------------------------------------------------ users
INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, last_name,
                       email, is_staff, is_active, date_joined, created_at, updated_at)
SELECT pg_temp.uid(1, u),
       'pbkdf2_sha256$1000000$' ||
           translate(left(encode(sha256(('salt' || u)::bytea), 'base64'), 22), '+/', 'xy') || '$' ||
           encode(sha256(('hash' || u)::bytea), 'base64'),
       CASE WHEN pg_temp.h(11, u, 0) % 10 = 0 THEN NULL
            ELSE timestamptz '2025-06-01 00:00:00+00' + make_interval(secs => pg_temp.h(11, u, 1) % 15552000) END,
       u = 1,
       lower(f) || '.' || lower(l) || u,
       f, l,
       lower(f) || '.' || lower(l) || u || '@' || (ARRAY['example.com', 'example.org', 'example.net'])[1 + pg_temp.h(11, u, 2) % 3],
       u = 1,
       pg_temp.h(11, u, 3) % 50 <> 0,
       joined, joined, joined + make_interval(secs => pg_temp.h(11, u, 4) % 31536000)
FROM generate_series(1, :nusers) u,
LATERAL (SELECT
    (pg_temp.first_names())[1 + pg_temp.h(12, u, 0) % 64] AS f,
    (pg_temp.last_names())[1 + pg_temp.h(12, u, 1) % 64] AS l,
    timestamptz '2020-06-01 00:00:00+00' + make_interval(secs => pg_temp.h(11, u, 5) % 18000000) AS joined
) x;

-- ------------------------------------------------------------------ tags
-- 61 names (prime): user u takes names (a + i*step) mod 61 for i < user_tags(u), all distinct.
INSERT INTO journal_tag (id, name, created_at, updated_at, user_id)
SELECT pg_temp.uid(2, u * 64 + i),
       (pg_temp.tag_names())
           [1 + (pg_temp.h(31, u, 0) + i * (1 + pg_temp.h(31, u, 1) % 60)) % 61],
       created, created, pg_temp.uid(1, u)
FROM generate_series(1, :nusers) u,
     generate_series(0, pg_temp.user_tags(u) - 1) i,
     LATERAL (SELECT timestamptz '2021-01-01 00:00:00+00'
                     + make_interval(secs => pg_temp.h(32, u, i) % 126230400) AS created) x;
\set label 'users and tags'
:step \g (tuples_only=on format=unaligned)

-- ------------------------------------------------------------------ entries
-- Entries 1..n in creation order over five years. EditorJS blocks: a leading header in 30% of
-- entries, then mostly paragraphs (1 to ~10 sentences, mean 3), some headers, lists, checklists, quotes and
-- delimiters. 2-12 blocks, plus 9% long entries with 8-27 more.
INSERT INTO journal_journalentry (id, title, content, is_public, created_at, updated_at, user_id)
SELECT pg_temp.uid(3, e),
       (SELECT txt FROM phr WHERE id = pg_temp.h(40, e, 0) % :nphr),
       ('{"time": ' || (extract(epoch FROM updated) * 1000)::bigint ||
        ', "blocks": [' || blocks || '], "version": "' ||
        (ARRAY['2.26.5', '2.27.2', '2.28.2', '2.29.1', '2.30.7'])[1 + (5 * (e - 1)) / :n] || '"}')::jsonb,
       pg_temp.h(40, e, 1) % 100 < 12,
       created, updated,
       pg_temp.uid(1, pg_temp.entry_user(e))
FROM generate_series(1, :n) e
CROSS JOIN LATERAL (SELECT
    timestamptz '2021-01-04 07:00:00+00'
        + make_interval(secs => (e - 1)::float8 / :n * 157766400 + pg_temp.h(40, e, 2) % 43200) AS created,
    2 + pg_temp.h(40, e, 3) % 6 + pg_temp.h(40, e, 4) % 6
        + CASE WHEN pg_temp.h(40, e, 5) % 100 < 9 THEN 8 + pg_temp.h(40, e, 6) % 20 ELSE 0 END AS nb,
    pg_temp.h(40, e, 7) % 100 < 30 AS lead_header) t1
CROSS JOIN LATERAL (SELECT CASE WHEN pg_temp.h(40, e, 8) % 10 < 7
    THEN created + make_interval(secs => (pg_temp.h(40, e, 9) % 900000) / 1e6)   -- saved once
    ELSE created + make_interval(secs => pg_temp.h(40, e, 9) % 3456000) END      -- edited later
    AS updated) t2
CROSS JOIN LATERAL (
    SELECT string_agg(
        '{"id": "' || pg_temp.block_id(b) || '", ' ||
        CASE
        WHEN kind < 8 THEN   -- header
            '"type": "header", "data": {"text": "' ||
            (SELECT txt FROM phr WHERE id = a % :nphr) || '", "level": ' || 2 + a % 2 || '}}'
        WHEN kind < 18 THEN  -- list
            '"type": "list", "data": {"style": "' || (CASE WHEN a % 3 = 0 THEN 'ordered' ELSE 'unordered' END) ||
            '", "items": [' ||
            (SELECT string_agg('"' || txt || '"', ', ' ORDER BY id) FROM phr
              WHERE id >= a % (:nphr - 6) AND id < a % (:nphr - 6) + 2 + c % 5) || ']}}'
        WHEN kind < 21 THEN  -- checklist
            '"type": "checklist", "data": {"items": [' ||
            (SELECT string_agg('{"text": "' || txt || '", "checked": ' ||
                               (CASE WHEN (id + c) % 3 = 0 THEN 'true' ELSE 'false' END) || '}', ', ' ORDER BY id)
               FROM phr WHERE id >= a % (:nphr - 6) AND id < a % (:nphr - 6) + 2 + c % 4) || ']}}'
        WHEN kind < 24 THEN  -- quote
            '"type": "quote", "data": {"text": "' || (SELECT txt FROM sent WHERE id = a % :nsent) ||
            '", "caption": "' || (SELECT txt FROM phr WHERE id = c % :nphr) || '", "alignment": "left"}}'
        WHEN kind < 26 THEN  -- delimiter
            '"type": "delimiter", "data": {}}'
        ELSE                 -- paragraph
            '"type": "paragraph", "data": {"text": "' || (SELECT txt FROM para WHERE id = a % :npara) || '"}}'
        END, ', ' ORDER BY j) AS blocks
    FROM generate_series(1, nb) j,
    LATERAL (SELECT e * 256 + j AS b,
                    CASE WHEN j = 1 AND lead_header THEN 0 ELSE pg_temp.h(41, e * 256 + j, 0) % 100 END AS kind,
                    pg_temp.h(41, e * 256 + j, 1) AS a,
                    pg_temp.h(41, e * 256 + j, 2) AS c) p
) t3;
\set label 'entries'
:step \g (tuples_only=on format=unaligned)

-- ------------------------------------------------------------------ entry tags
-- 25% of entries carry one tag, 4% two to five (never more than their author owns).
INSERT INTO journal_journalentry_tags (journalentry_id, tag_id)
SELECT pg_temp.uid(3, e), pg_temp.uid(2, usr * 64 + (st + j) % nt)
FROM generate_series(1, :n) e,
     LATERAL (SELECT pg_temp.entry_user(e) AS usr,
                     pg_temp.user_tags(pg_temp.entry_user(e)) AS nt,
                     pg_temp.h(42, e, 0) % 100 AS r,
                     pg_temp.h(42, e, 1) AS st) x,
     generate_series(0, least(nt, CASE WHEN r < 4 THEN 2 + pg_temp.h(42, e, 2) % 4 WHEN r < 29 THEN 1 ELSE 0 END) - 1) j;
\set label 'entry tags'
:step \g (tuples_only=on format=unaligned)
