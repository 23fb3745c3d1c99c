#!/usr/bin/env bash
# The Kafka broker of docker-compose.yml, with credentials as deploy/local/bx-infra makes them:
# SASL/SCRAM on the clients' listener (9092), SASL/PLAIN on the controller's (9093), the
# StandardAuthorizer with an ACL per principal. The SCRAM users are written into the first
# metadata by the storage format; the ACLs are set once the broker answers. Secrets from
# /run/secrets/kafka_<user> (deploy/compose/make-secrets), never on a command line: the format's
# arguments go through a JVM argument file.
set -euo pipefail
K=/opt/kafka
DATA=/var/lib/kafka/data
CONF=/tmp/bx-kafka   # the container's own, not a volume
mkdir -p "$CONF"
umask 077
pw() { cat "/run/secrets/kafka_$1"; }
USERS=(bx-admin bx-ingest bx-score bx-escalate bx-notify bx-console operator analyst)
cat >"$CONF/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
listeners=CLIENT://:9092,CONTROLLER://:9093
advertised.listeners=CLIENT://kafka:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=CLIENT
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="bx-admin" password="$(pw bx-admin)";
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="bx-controller" password="$(pw controller)" user_bx-controller="$(pw controller)";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:bx-admin;User:bx-controller
allow.everyone.if.no.acl.found=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=12
log.dirs=$DATA
PROPS
printf 'security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="bx-admin" password="%s";\n' \
    "$(pw bx-admin)" >"$CONF/admin.properties"
if [ ! -f "$DATA/meta.properties" ]; then
    args=(format -t "$("$K/bin/kafka-storage.sh" random-uuid)" -c "$CONF/server.properties")
    for u in "${USERS[@]}"; do args+=(--add-scram "SCRAM-SHA-256=[name=$u,password=$(pw "$u")]"); done
    args+=(--add-scram "SCRAM-SHA-512=[name=analyst,password=$(pw analyst)]")
    printf '"%s"\n' kafka.tools.StorageTool "${args[@]}" >"$CONF/format.args"
    java -cp "$K/libs/*" "@$CONF/format.args"
    rm -f "$CONF/format.args"
fi
# ACLs once the broker answers (the same as deploy/local/bx-infra's, without the test topics).
(
    until "$K/bin/kafka-broker-api-versions.sh" --bootstrap-server localhost:9092 \
        --command-config "$CONF/admin.properties" >/dev/null 2>&1; do sleep 2; done
    acl() { "$K/bin/kafka-acls.sh" --bootstrap-server localhost:9092 --command-config "$CONF/admin.properties" \
        --add --force --resource-pattern-type prefixed "$@" >/dev/null; }
    acl --allow-principal User:bx-ingest --operation Write --operation Describe --topic bx.attendance.v1 --topic bx.actions.v1 --topic bx.dlq.v1
    acl --allow-principal User:bx-score --operation Read --operation Describe --topic bx.attendance.v1 --group bx-score
    acl --allow-principal User:bx-score --operation Write --operation Describe --topic bx.risk.v1 --topic bx.analytics.risk.v1 --topic bx.analytics.attendance.v1 --topic bx.dlq.v1
    acl --allow-principal User:bx-escalate --operation Read --operation Describe --topic bx.risk.v1 --topic bx.actions.v1 --group bx-escalate
    acl --allow-principal User:bx-escalate --operation Write --operation Describe --topic bx.case.events.v1 --topic bx.notify.requests.v1 --topic bx.analytics.cases.v1 --topic bx.dlq.v1
    acl --allow-principal User:bx-notify --operation Read --operation Describe --topic bx.notify.requests.v1 --group bx-notify
    acl --allow-principal User:bx-notify --operation Write --operation Describe --topic bx.notify.status.v1 --topic bx.dlq.v1
    acl --allow-principal User:bx-console --operation Write --operation Describe --topic bx.attendance.v1 --topic bx.actions.v1 --topic bx.notify.requests.v1 --topic bx.dlq.v1
    acl --allow-principal User:operator --operation Read --operation Describe --topic bx.dlq.v1 --group operator
    acl --allow-principal User:analyst --operation Read --operation Describe --topic bx.analytics. --group analyst
    echo "baoxue: ACLs set"
) &
exec "$K/bin/kafka-server-start.sh" "$CONF/server.properties"
