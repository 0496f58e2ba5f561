#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* rd_kafka_producev is variadic and its RD_KAFKA_V_* macros do not import into Swift:
   this wrapper is the one produce call the Swift side makes. librdkafka copies key and value
   (RD_KAFKA_MSG_F_COPY) and takes ownership of `headers` on success only. */
static inline rd_kafka_resp_err_t redress_produce(rd_kafka_t *rk, const char *topic,
                                                  const void *key, size_t key_len,
                                                  const void *value, size_t value_len,
                                                  rd_kafka_headers_t *headers, void *opaque) {
    return rd_kafka_producev(rk,
                             RD_KAFKA_V_TOPIC(topic),
                             RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE(value, value_len),
                             RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(opaque),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_END);
}

static inline int32_t redress_partition_unassigned(void) { return RD_KAFKA_PARTITION_UA; }
