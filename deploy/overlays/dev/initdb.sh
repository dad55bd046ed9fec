#!/bin/sh
# Run once by the postgres image on an empty data directory: one role and
# one database per service, passwords from the postgres-dev Secret.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v identity_password="$IDENTITY_DB_PASSWORD" \
  -v membership_password="$MEMBERSHIP_DB_PASSWORD" <<'SQL'
CREATE ROLE identity LOGIN PASSWORD :'identity_password';
CREATE DATABASE identity OWNER identity;
CREATE ROLE membership LOGIN PASSWORD :'membership_password';
CREATE DATABASE membership OWNER membership;
SQL
