-- Guacamole's PostgreSQL database, created by the chart's init job
-- (templates/guacamole-db-init.yaml) with psql as the postgres superuser.
-- Idempotent: run again on every install and upgrade.
--   1. the role `guacamole` (password: the guacamole admin Secret's, as the
--      Guacamole Deployment's POSTGRESQL_PASSWORD) and the database `guacamole`;
--   2. Guacamole's schema (initdb.sh --postgresql of the deployed image), once;
--   3. the account the hub manages desktop connections with (the same Secret's
--      username and password, hashed as Guacamole does: SHA-256 of the password
--      followed by the upper-case hex of a random salt), its password reset to
--      the Secret's on every run;
--   4. the schema's default administrator `guacadmin` (password `guacadmin`) removed.
\set ON_ERROR_STOP on
\getenv db_password GUACAMOLE_DB_PASSWORD
\getenv admin_user GUACAMOLE_ADMIN_USERNAME
\getenv admin_password GUACAMOLE_ADMIN_PASSWORD
\getenv schema_file GUACAMOLE_SCHEMA_FILE

SELECT 'CREATE ROLE guacamole LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'guacamole') \gexec
ALTER ROLE guacamole WITH LOGIN PASSWORD :'db_password';
SELECT 'CREATE DATABASE guacamole OWNER guacamole'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'guacamole') \gexec

\connect guacamole
SET ROLE guacamole;
SELECT to_regclass('public.guacamole_user') IS NULL AS fresh \gset
\if :fresh
\i :schema_file
\endif

BEGIN;
INSERT INTO guacamole_entity (name, type) VALUES (:'admin_user', 'USER') ON CONFLICT DO NOTHING;
INSERT INTO guacamole_user (entity_id, password_hash, password_date)
  SELECT entity_id, '\x00'::bytea, now() FROM guacamole_entity WHERE name = :'admin_user' AND type = 'USER'
  ON CONFLICT (entity_id) DO NOTHING;
UPDATE guacamole_user AS u
   SET password_salt = s.salt,
       password_hash = sha256(convert_to(:'admin_password' || upper(encode(s.salt, 'hex')), 'UTF8')),
       password_date = now(),
       disabled = false
  FROM (SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())) AS salt) AS s,
       guacamole_entity AS e
 WHERE u.entity_id = e.entity_id AND e.name = :'admin_user' AND e.type = 'USER';
INSERT INTO guacamole_system_permission (entity_id, permission)
  SELECT e.entity_id, p.permission::guacamole_system_permission_type
    FROM guacamole_entity AS e, (VALUES ('CREATE_CONNECTION'), ('CREATE_USER'), ('ADMINISTER')) AS p (permission)
   WHERE e.name = :'admin_user' AND e.type = 'USER'
  ON CONFLICT DO NOTHING;
DELETE FROM guacamole_entity WHERE type = 'USER' AND name = 'guacadmin' AND name <> :'admin_user';
COMMIT;
