#include "CRawProtobufBench.h"

#include <stdlib.h>
#include <string.h>
#include "platos_descriptor_table.h"

uint64_t platos_raw_write_request_round_trips(const char *content, size_t iterations) {
    Platos__V1__WriteMemoryRequest request = PLATOS__V1__WRITE_MEMORY_REQUEST__INIT;
    char *tags[] = {"preference", "travel", "profile"};
    Platos__V1__WriteMemoryRequest__MetadataEntry e1 = PLATOS__V1__WRITE_MEMORY_REQUEST__METADATA_ENTRY__INIT;
    Platos__V1__WriteMemoryRequest__MetadataEntry e2 = PLATOS__V1__WRITE_MEMORY_REQUEST__METADATA_ENTRY__INIT;
    e1.key = "source";
    e1.value = "chat";
    e2.key = "lang";
    e2.value = "en";
    Platos__V1__WriteMemoryRequest__MetadataEntry *entries[] = {&e1, &e2};
    request.content = (char *)content;
    request.n_tags = 3;
    request.tags = tags;
    request.n_metadata = 2;
    request.metadata = entries;

    uint8_t *buffer = malloc(platos__v1__write_memory_request__get_packed_size(&request) + 64);
    uint64_t checksum = 0;
    for (size_t i = 0; i < iterations; i++) {
        size_t size = platos__v1__write_memory_request__get_packed_size(&request);
        size_t written = platos__v1__write_memory_request__pack(&request, buffer);
        Platos__V1__WriteMemoryRequest *back = platos__v1__write_memory_request__unpack(NULL, written, buffer);
        checksum += size + strlen(back->content) + back->n_tags + back->n_metadata;
        platos__v1__write_memory_request__free_unpacked(back, NULL);
    }
    free(buffer);
    return checksum;
}
