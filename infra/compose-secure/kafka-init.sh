#!/bin/bash
# Creates the topics and the ACLs of `tickflow acls --commands` as the admin, over SASL_SSL.
set -euo pipefail
admin=/tmp/admin.properties
umask 077
cat > "$admin" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(</var/lib/tickflow-secrets/credentials/admin.password)";
ssl.truststore.type=PEM
ssl.truststore.location=/var/lib/tickflow-secrets/tls/ca.pem
PROPS
PATH=/opt/kafka/bin:$PATH
for topic in prices prices-dlq stocks stocks-dlq unique-users user-tracker user-tracker-dlq user-tracker-late users users-clean users-dlq users-stats volatility; do
  case $topic in unique-users | *dlq | *dead-letters) partitions=1 ;; *) partitions=3 ;; esac
  kafka-topics.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --create --if-not-exists --topic "$topic" --partitions "$partitions" --replication-factor 1
done
# ACLs: the output of `tickflow acls --commands --bootstrap-server kafka-secure:9096 --command-config /tmp/admin.properties`.
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-produce-prices --operation Write --topic 'prices'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-produce-prices --operation Write --transactional-id 'tickflow-produce-prices-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-generate-stocks --operation Write --topic 'stocks'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-generate-stocks --operation Write --transactional-id 'tickflow-generate-stocks-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-replay --operation Write --topic 'user-tracker'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-replay --operation Write --topic 'users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-replay --operation Write --transactional-id 'tickflow-replay-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-stats --operation Read --topic 'prices'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-aggregate-stocks --operation Read --topic 'stocks'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-aggregate-stocks --operation Write --topic 'stocks-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-aggregate-stocks --operation Read --group 'stocks-aggregator'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-indicators --operation Read --topic 'prices'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-indicators --operation Write --topic 'volatility'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-indicators --operation Write --topic 'prices-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-indicators --operation Read --group 'tickflow-indicators'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-indicators --operation Write --transactional-id 'tickflow-indicators-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-archive --operation Read --topic 'prices'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-archive --operation Read --topic 'stocks'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-archive --operation Write --topic 'prices-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-archive --operation Write --topic 'stocks-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-archive --operation Read --group 'tickflow-archive-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Read --topic 'user-tracker'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Write --topic 'unique-users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Write --topic 'user-tracker-late'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Write --topic 'user-tracker-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Read --group 'unique-users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-unique-users --operation Write --transactional-id 'tickflow-unique-users-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Read --topic 'users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Write --topic 'users-clean'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Write --topic 'users-stats'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Write --topic 'users-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Read --group 'clean-users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-clean-users --operation Write --transactional-id 'tickflow-clean-users-' --resource-pattern-type prefixed
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-monitor --operation Read --topic 'user-tracker-late'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-monitor --operation Read --topic 'users-dlq'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-monitor --operation Describe --topic '*'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-monitor --operation Describe --group '*'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-monitor --operation Describe --transactional-id '*'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-api --operation Read --topic 'unique-users'
kafka-acls.sh --bootstrap-server kafka-secure:9096 --command-config "$admin" --add --allow-principal User:tf-api --operation Describe --topic '*'
