/* analyst_broker: what the Kafka broker must know of an analyst, set as the administrator
 * principal of bxctl's environment (BX_KAFKA_USERNAME, BX_KAFKA_PASSWORD[_FILE]): the SCRAM-SHA-512
 * credential of User:analyst.<name>, through Kafka's own ConfigCommand (kafka-configs.sh) because
 * Debian 12's librdkafka (2.0.2) has no AlterUserScramCredentials, and the prefixed ACLs, through
 * librdkafka's CreateAcls and DeleteAcls. No password ever reaches a command line, a log line or an
 * error text: the JVM gets its arguments from a file of mode 600 in a private folder that is
 * removed before the call returns, and the tool's output is masked before anything of it is
 * shown. */
#ifndef BXCTL_ANALYST_BROKER_H
#define BXCTL_ANALYST_BROKER_H

#include "bx_status.h"

#include <stdbool.h>

/* Every analyst may read (and describe) the topics whose names start with this. */
#define ANALYST_TOPIC_PREFIX "bx.analytics."
/* The SASL mechanism of analysts' credentials. */
#define ANALYST_MECHANISM "SCRAM-SHA-512"

typedef struct analyst_broker {
    const char *brokers;    /* BX_KAFKA_BROKERS; borrowed */
    const char *kafka_home; /* BX_KAFKA_HOME: a Kafka installation, whose libs/ has its jars */
} analyst_broker;

/* The clients' security.protocol: BX_KAFKA_SECURITY_PROTOCOL, or SASL_PLAINTEXT as
 * bx_kafka_conf_credentials has it. Static storage or the environment's. */
const char *analyst_broker_protocol(void);

/* BX_OK when bxctl's environment names an administrator for the broker (BX_KAFKA_USERNAME);
 * BX_EINVAL otherwise, saying that the broker takes no credentials here. */
bx_status analyst_broker_ready(const analyst_broker *b, bx_error *err) BX_MUSTCHECK;

/* Gives the broker principal's SCRAM-SHA-512 credential: password (borrowed, never kept) with
 * iterations. Runs a JVM: seconds. */
bx_status analyst_broker_scram_set(const analyst_broker *b, const char *principal,
                                   const char *password, int iterations,
                                   bx_error *err) BX_MUSTCHECK;
/* Removes principal's SCRAM-SHA-512 credential; BX_ENOTFOUND when the broker has none. */
bx_status analyst_broker_scram_delete(const analyst_broker *b, const char *principal,
                                      bx_error *err) BX_MUSTCHECK;

/* Allows principal ("User:analyst.<name>") Read and Describe on topics prefixed
 * ANALYST_TOPIC_PREFIX and Read on consumer groups prefixed group_prefix ("analyst.<name>."). */
bx_status analyst_broker_acls_create(const analyst_broker *b, const char *principal,
                                     const char *group_prefix, bx_error *err) BX_MUSTCHECK;
/* Removes every ACL that names principal; *removed (may be NULL) receives how many. */
bx_status analyst_broker_acls_delete(const analyst_broker *b, const char *principal, int *removed,
                                     bx_error *err) BX_MUSTCHECK;

/* Waits up to timeout_ms until the broker signs user in with password (SCRAM-SHA-512) and, when
 * the administrator sees a topic prefixed ANALYST_TOPIC_PREFIX, until user sees one too (its
 * Describe ACL is in force): so a create returns only once the analyst can read. */
bx_status analyst_broker_wait_usable(const analyst_broker *b, const char *user,
                                     const char *password, int timeout_ms,
                                     bx_error *err) BX_MUSTCHECK;

#endif
