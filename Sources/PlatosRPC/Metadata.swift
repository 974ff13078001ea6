import PlatosProto

/// Call metadata: lower-case keys, in order, a key may repeat.
public struct Metadata: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [V1.MetadataEntry]

    public init(_ entries: [V1.MetadataEntry] = []) { self.entries = entries }

    /// Metadata as a peer sent it, keys lower-cased: keys are case-insensitive, as in HTTP/2 and
    /// gRPC, so `Authorization` is `authorization` to every reader (and to every filter that
    /// drops an entry by its key).
    public init(wire entries: [V1.MetadataEntry]) {
        self.entries = entries
        for index in self.entries.indices
        where self.entries[index].key.utf8.contains(where: { (0x41...0x5A).contains($0) || $0 >= 0x80 }) {
            self.entries[index].key = self.entries[index].key.lowercased()
        }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        entries = elements.map { V1.MetadataEntry(key: $0.0.lowercased(), value: $0.1) }
    }

    /// The first value for `key`; setting replaces every value for it.
    public subscript(key: String) -> String? {
        get { entries.first { $0.key == key }?.value }
        set {
            entries.removeAll { $0.key == key }
            if let newValue { entries.append(V1.MetadataEntry(key: key, value: newValue)) }
        }
    }

    public mutating func add(_ key: String, _ value: String) {
        entries.append(V1.MetadataEntry(key: key.lowercased(), value: value))
    }

    public var isEmpty: Bool { entries.isEmpty }
}

/// Metadata keys Platos itself reads.
public enum MetadataKey {
    public static let authorization = "authorization"
    public static let user = "x-platos-user"
    public static let task = "x-platos-task"
    /// The gateway-stamped principal (base64 of a `platos.v1.Principal`) and its HMAC.
    public static let principal = "x-platos-principal"
    public static let principalSignature = "x-platos-principal-sig"
    /// On RESOURCE_EXHAUSTED from a rate limit: when to try again.
    public static let retryAfterMs = "retry-after-ms"
    /// On OUT_OF_RANGE from `registry.watch`: the newest membership version, to watch from.
    public static let currentVersion = "current-version"
    /// On ALREADY_EXISTS from a retried `tokens.issue`: the token the first call issued.
    public static let tokenId = "token-id"
    /// On UNAUTHENTICATED from a backend, `true`: the gateway's principal stamp was refused,
    /// not the caller's token (`RPCError.principalRejected`).
    public static let principalRejected = "principal-rejected"
    /// On UNAVAILABLE, `true`: the call was refused before anything ran (``RPCError/notStarted(_:)``).
    public static let notStarted = "not-started"
}
