#!/bin/bash
# Formats the storage once with a SCRAM-SHA-512 user per credentials/<user>.password
# (admin and one per service; pg-*.password are PostgreSQL's), then runs the broker.
set -euo pipefail
props=/etc/tickflow/compose-secure/kafka.properties
if [[ ! -f /var/lib/kafka/data/meta.properties ]]; then
  scram=()
  for file in /var/lib/tickflow-secrets/credentials/*.password; do
    user=$(basename "$file" .password)
    [[ $user == pg-* ]] && continue
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(<"$file")]")
  done
  /opt/kafka/bin/kafka-storage.sh format --standalone -t "${CLUSTER_ID}" -c "$props" "${scram[@]}"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$props"
