import PlatosRPC

/// Size limits on what a caller may store, checked before anything touches the database. Each
/// violation is `INVALID_ARGUMENT` naming the field, so a client can tell which part to fix.
enum RequestLimits {
    static let maxTitleBytes = 512
    static let maxContentBytes = 64 * 1024
    static let maxPromptBytes = 64 * 1024
    static let maxResultBytes = 64 * 1024
    static let maxErrorBytes = 16 * 1024
    static let maxMetadataBytes = 16 * 1024
    static let maxIdempotencyKeyBytes = 256
    static let maxIdBytes = 256
    /// A page token this service issues is base64 of `<created_at>:<id>`, about 72 bytes; memory
    /// caps its own tokens at the same 128.
    static let maxPageTokenBytes = 128
    /// Entries in `threads.list`'s `metadata_filter`: each is one more clause of the statement,
    /// whose text (and so its cached plan) depends on their number. Unbounded, a thousand of them
    /// hit SQLite's expression-depth limit, and every distinct count is another cached statement
    /// on each reader connection.
    static let maxMetadataFilterEntries = 16
    /// `tasks.claim` long-polls at most this long, as threads.proto promises.
    static let maxWaitMs: UInt32 = 30_000

    static func require(_ value: String, _ field: String) throws {
        guard !value.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        try limit(value, field, maxIdBytes)
    }

    /// An id that may be left empty (a filter): bounded like a required one.
    static func optionalId(_ value: String, _ field: String) throws {
        try limit(value, field, maxIdBytes)
    }

    static func limit(_ value: String, _ field: String, _ maxBytes: Int) throws {
        let count = value.utf8.count
        guard count <= maxBytes else {
            throw RPCError(.invalidArgument, "\(field) is \(count) bytes; the limit is \(maxBytes)")
        }
    }

    static func metadata(_ metadata: [String: String], _ field: String = "metadata") throws {
        var total = 0
        for (key, value) in metadata {
            guard !key.isEmpty else { throw RPCError(.invalidArgument, "\(field) has an empty key") }
            total += key.utf8.count + value.utf8.count
        }
        guard total <= maxMetadataBytes else {
            throw RPCError(.invalidArgument, "\(field) is \(total) bytes; the limit is \(maxMetadataBytes)")
        }
    }

    static func idempotencyKey(_ key: String) throws {
        try limit(key, "idempotency_key", maxIdempotencyKeyBytes)
    }
}
