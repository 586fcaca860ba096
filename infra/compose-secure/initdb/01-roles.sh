#!/bin/bash
# A role per service: tickflow_writer owns the database (migrations, the pipelines),
# tickflow_reader can only SELECT (the API). Passwords from the secured infra's files.
set -euo pipefail
dir=/var/lib/postgresql/tickflow-secrets
psql -v ON_ERROR_STOP=1 --username postgres --dbname postgres \
  -v writer="$(<"$dir/pg-tickflow_writer.password")" -v reader="$(<"$dir/pg-tickflow_reader.password")" <<'SQL'
CREATE ROLE tickflow_writer LOGIN PASSWORD :'writer';
CREATE ROLE tickflow_reader LOGIN PASSWORD :'reader';
ALTER DATABASE tickflow OWNER TO tickflow_writer;
\c tickflow
ALTER SCHEMA public OWNER TO tickflow_writer;
GRANT USAGE ON SCHEMA public TO tickflow_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE tickflow_writer IN SCHEMA public GRANT SELECT ON TABLES TO tickflow_reader;
SQL
