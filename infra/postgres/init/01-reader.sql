-- The API reads through this role: it can SELECT and nothing else. Tables created later
-- by the migrations (owned by postgres) are readable through the default privileges.
CREATE ROLE tickflow_reader LOGIN PASSWORD 'tickflow_reader';
GRANT CONNECT ON DATABASE tickflow TO tickflow_reader;
GRANT USAGE ON SCHEMA public TO tickflow_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO tickflow_reader;
