import PlatosProto
import PlatosRPC

/// Input rules, with errors that name the field and say what would be accepted.
enum RegistryValidation {
    static func slug(_ value: String, field: String = "slug") throws {
        let ok = (1...63).contains(value.utf8.count)
            && value.utf8.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
        guard ok else { throw RegistryError.invalid(field, "'\(value)' must match [a-z0-9-]{1,63}") }
    }

    static func name(_ value: String, field: String = "name") throws {
        guard !value.allSatisfy(\.isWhitespace) else { throw RegistryError.invalid(field, "must not be empty") }
        guard value.utf8.count <= 256 else { throw RegistryError.invalid(field, "is longer than 256 bytes") }
    }

    static func text(_ value: String, field: String, max: Int) throws {
        guard value.utf8.count <= max else { throw RegistryError.invalid(field, "is longer than \(max) bytes") }
    }

    /// A request's metadata, and again a stored map after a merge: merged updates with new keys
    /// would otherwise grow it past any one request's limit.
    static func metadata(_ value: [String: String], field: String = "metadata") throws {
        let size = value.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard size <= 16 * 1024 else { throw RegistryError.invalid(field, "is larger than 16 KiB") }
    }

    static func idempotencyKey(_ value: String) throws {
        try text(value, field: "idempotency_key", max: 256)
    }

    /// Ten years: the longest a token may be issued for (0 means no expiry). Also keeps
    /// `now + ttl` far from overflowing.
    static let maxTokenTTLSeconds: Int64 = 10 * 366 * 24 * 3600

    static func id(_ value: String, field: String) throws {
        guard !value.isEmpty else { throw RegistryError.invalid(field, "is required") }
        guard value.utf8.count <= 128 else { throw RegistryError.invalid(field, "is longer than 128 bytes") }
    }

    static func clusterMembers(_ ids: [String]) throws {
        guard ids.count >= 2 else {
            throw RegistryError.invalid("agent_ids", "needs at least two agents, got \(ids.count)")
        }
        var seen: Set<String> = []
        for id in ids {
            try self.id(id, field: "agent_ids")
            guard seen.insert(id).inserted else { throw RegistryError.invalid("agent_ids", "lists '\(id)' more than once") }
        }
    }
}
