#!/usr/bin/env bash
# The Redress database roles, created once per PostgreSQL cluster (roles are cluster-wide, so this is
# set-up, not a migration; migration 2 refuses to run without them). The same statements as
# scripts/lib.sh (start_postgres) and the README ("Database roles"), made safe to run again: a role
# or database that exists is left as it is, and the passwords given are (re)set.
#
#   redress          LOGIN CREATEDB  owns the database and schema; migrates (redressctl migrate)
#   redress_staff    NOLOGIN         the staff API switches to it for each request (row-level security)
#   redress_service  LOGIN           the seven services log in as this
#
# Needs a connection that may create roles (a superuser), given by the libpq variables PGHOST,
# PGPORT, PGUSER, PGPASSWORD, PGDATABASE (default: the postgres maintenance database). Used by
# deploy/compose.yaml (the postgres-roles job, which logs in as the image's POSTGRES_USER: redress,
# already a superuser, so it is not created again) and deploy/k8s/db-roles-job.yaml.
#
#   REDRESS_SERVICE_PG_PASSWORD  required: password of redress_service
#   REDRESS_OWNER_PG_PASSWORD    optional: password of redress (compose leaves it to POSTGRES_PASSWORD)
#   REDRESS_PG_DATABASE          the database, created owned by redress if missing (default redress)
set -euo pipefail

: "${REDRESS_SERVICE_PG_PASSWORD:?set REDRESS_SERVICE_PG_PASSWORD, the password redress_service logs in with}"
export PGDATABASE="${PGDATABASE:-postgres}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    -v service_password="$REDRESS_SERVICE_PG_PASSWORD" \
    -v owner_password="${REDRESS_OWNER_PG_PASSWORD:-}" \
    -v database="${REDRESS_PG_DATABASE:-redress}" <<'SQL'
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redress') THEN
        CREATE ROLE redress LOGIN CREATEDB;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redress_staff') THEN
        CREATE ROLE redress_staff NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redress_service') THEN
        CREATE ROLE redress_service LOGIN;
    END IF;
    IF NOT pg_has_role('redress_service', 'redress_staff', 'MEMBER') THEN
        GRANT redress_staff TO redress_service;
    END IF;
    IF NOT pg_has_role('redress', 'redress_staff', 'MEMBER') THEN
        GRANT redress_staff TO redress;
    END IF;
END $$;

ALTER ROLE redress_service PASSWORD :'service_password';
SELECT format('ALTER ROLE redress PASSWORD %L', :'owner_password') WHERE :'owner_password' <> '' \gexec
SELECT format('CREATE DATABASE %I OWNER redress', :'database')
    WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'database') \gexec
SQL
echo "redress roles ready (redress, redress_staff, redress_service) and database ${REDRESS_PG_DATABASE:-redress}"
