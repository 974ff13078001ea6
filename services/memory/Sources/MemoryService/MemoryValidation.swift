import PlatosProto
import PlatosRPC

/// Checks requests before they reach storage. Every failure is `INVALID_ARGUMENT` with a message
/// that names the field and the limit, because the person reading it has to fix that field.
enum MemoryValidation {
    static func invalid(_ message: String) -> RPCError { RPCError(.invalidArgument, message) }

    static func content(_ content: String, field: String = "content") throws {
        let bytes = content.utf8.count
        guard bytes > 0 else { throw invalid("\(field) is required") }
        guard bytes <= MemoryLimits.maxContentBytes else {
            throw invalid("\(field) is \(bytes) bytes; the limit is \(MemoryLimits.maxContentBytes) (64 KiB)")
        }
    }

    static func tags(_ tags: [String], field: String = "tags") throws {
        guard tags.count <= MemoryLimits.maxTags else {
            throw invalid("\(field) has \(tags.count) entries; the limit is \(MemoryLimits.maxTags)")
        }
        for (i, tag) in tags.enumerated() {
            guard !tag.isEmpty else { throw invalid("\(field)[\(i)] is empty") }
            guard tag.utf8.count <= MemoryLimits.maxTagBytes else {
                throw invalid("\(field)[\(i)] is \(tag.utf8.count) bytes; the limit is \(MemoryLimits.maxTagBytes)")
            }
        }
    }

    static func metadata(_ metadata: [String: String], field: String = "metadata") throws {
        var bytes = 0
        for (key, value) in metadata {
            guard !key.isEmpty else { throw invalid("\(field) has an empty key") }
            bytes += key.utf8.count + value.utf8.count
        }
        guard bytes <= MemoryLimits.maxMetadataBytes else {
            throw invalid(
                "\(field) is \(bytes) bytes (keys and values); the limit is \(MemoryLimits.maxMetadataBytes) (16 KiB)")
        }
    }

    static func visibility(_ visibility: V1.Visibility) throws {
        if case .unrecognized(let value) = visibility {
            throw invalid("visibility \(value) is neither VISIBILITY_SHARED (0) nor VISIBILITY_PRIVATE (1)")
        }
    }

    static func expiresAt(_ value: Int64, field: String = "expires_at_unix_ms") throws {
        guard value >= 0 else {
            throw invalid("\(field) must be 0 (never) or a time in Unix milliseconds, got \(value)")
        }
    }

    static func idempotencyKey(_ key: String) throws {
        guard key.utf8.count <= MemoryLimits.maxIdempotencyKeyBytes else {
            throw invalid(
                "idempotency_key is \(key.utf8.count) bytes; the limit is \(MemoryLimits.maxIdempotencyKeyBytes)")
        }
    }

    static func memoryId(_ id: String) throws {
        guard !id.isEmpty else { throw invalid("memory_id is required") }
        guard id.utf8.count <= MemoryLimits.maxIdBytes else {
            throw invalid("memory_id is \(id.utf8.count) bytes; the limit is \(MemoryLimits.maxIdBytes)")
        }
    }

    static func query(_ query: String) throws {
        guard query.utf8.count <= MemoryLimits.maxQueryBytes else {
            throw invalid("query is \(query.utf8.count) bytes; the limit is \(MemoryLimits.maxQueryBytes) (1 KiB)")
        }
    }

    static func timeRange(since: Int64, until: Int64) throws {
        guard since >= 0 else { throw invalid("since_unix_ms must not be negative, got \(since)") }
        guard until >= 0 else { throw invalid("until_unix_ms must not be negative, got \(until)") }
        if since > 0, until > 0, since > until {
            throw invalid("since_unix_ms (\(since)) is after until_unix_ms (\(until))")
        }
    }

    static func authorAgentId(_ id: String) throws {
        guard id.utf8.count <= MemoryLimits.maxIdBytes else {
            throw invalid("author_agent_id is \(id.utf8.count) bytes; the limit is \(MemoryLimits.maxIdBytes)")
        }
    }

    /// Tags in the order given, each once: a memory's tags are a set.
    static func distinct(_ tags: [String]) -> [String] {
        var seen = Set<String>()
        return tags.filter { seen.insert($0).inserted }
    }
}
