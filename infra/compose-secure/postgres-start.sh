#!/bin/bash
# Runs as root before the image's entrypoint: copies the certificate, key and role passwords
# where the postgres user can read them (key 0600, owned by postgres), then starts the
# server with ssl=on and a pg_hba that takes only TLS with scram-sha-256.
set -euo pipefail
dest=/var/lib/postgresql/tickflow-secrets
install -d -o postgres -g postgres -m 700 "$dest"
install -o postgres -g postgres -m 600 /var/lib/tickflow-secrets/tls/server.pem "$dest/server.pem"
install -o postgres -g postgres -m 600 /var/lib/tickflow-secrets/tls/server.key "$dest/server.key"
for role in postgres tickflow_writer tickflow_reader; do
  install -o postgres -g postgres -m 600 "/var/lib/tickflow-secrets/credentials/pg-$role.password" "$dest/pg-$role.password"
done
exec docker-entrypoint.sh postgres \
  -c ssl=on -c "ssl_cert_file=$dest/server.pem" -c "ssl_key_file=$dest/server.key" \
  -c password_encryption=scram-sha-256 -c hba_file=/etc/tickflow/compose-secure/pg_hba.conf
