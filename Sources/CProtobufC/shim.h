// The system protobuf-c runtime (Debian: libprotobuf-c-dev).
#include <protobuf-c/protobuf-c.h>

// protobuf-c's shared empty string (a C array, which Swift imports as a tuple, not a pointer).
static inline const char *protobufCEmptyString(void) { return protobuf_c_empty_string; }
