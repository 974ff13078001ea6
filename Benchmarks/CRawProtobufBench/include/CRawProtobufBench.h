#ifndef PLATOS_RAW_PROTOBUF_BENCH_H
#define PLATOS_RAW_PROTOBUF_BENCH_H
#include <stddef.h>
#include <stdint.h>

/// The limit the Swift bridge is measured against: `iterations` full round trips of a
/// `platos.v1.WriteMemoryRequest` in plain C (struct → pack → unpack → free_unpacked), with the
/// same content, three tags and two metadata pairs as the Swift side. Returns a checksum so
/// the work cannot be optimised away.
uint64_t platos_raw_write_request_round_trips(const char *content, size_t iterations);

#endif
