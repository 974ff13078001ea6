import NIOConcurrencyHelpers
import PlatosProto

/// Stamps the signer made recently, reused for up to a second.
///
/// The gateway stamps every downstream call, and a busy caller makes many calls to the same
/// method within a second: serialising the principal, the HMAC and two base64 encodings each
/// time were most of the stamp's cost. A reused stamp is exactly as valid as a fresh one (it is
/// a stamp of the same principal for the same method, at most a second older, and backends
/// accept stamps up to `maxAge` old), and it lets the backend's ``VerifiedStampCache`` hit.
final class StampCache: Sendable {
    struct Key: Hashable {
        let principal: V1.Principal
        let method: String
    }

    private struct Stamp {
        let issuedMs: Int64
        let entries: [V1.MetadataEntry]
    }

    static let reuseWindowMs: Int64 = 1000
    /// Entries kept at most; the cache starts over when full (recomputing is cheap).
    static let capacity = 4096

    private let stamps = NIOLockedValueBox([Key: Stamp]())

    func stamp(_ key: Key, nowMs: Int64, make: () throws -> [V1.MetadataEntry]) rethrows -> [V1.MetadataEntry] {
        if let cached = stamps.withLockedValue({ $0[key] }), nowMs >= cached.issuedMs,
            nowMs - cached.issuedMs < Self.reuseWindowMs
        {
            return cached.entries
        }
        let entries = try make()
        stamps.withLockedValue { stamps in
            if stamps.count >= Self.capacity { stamps.removeAll(keepingCapacity: true) }
            stamps[key] = Stamp(issuedMs: nowMs, entries: entries)
        }
        return entries
    }
}

/// Stamps a backend has verified, so that the same stamp arriving again (a gateway reuses a
/// stamp for up to a second, see ``StampCache``) costs a dictionary lookup instead of two base64
/// decodings, an HMAC and a protobuf decode.
///
/// Only stamps that passed the full check are stored, and a hit needs the very same signature,
/// principal text and method: the full check would succeed again, since it is deterministic. Its
/// age is still checked on every hit.
final class VerifiedStampCache: Sendable {
    struct Entry {
        let encodedPrincipal: String
        let method: String
        let issuedMs: Int64
        let principal: V1.Principal
    }

    private let entries = NIOLockedValueBox([String: Entry]())

    /// The entry for `signature`, when it was verified for the same principal text and method.
    func entry(signature: String, encodedPrincipal: String, method: String) -> Entry? {
        guard let entry = entries.withLockedValue({ $0[signature] }),
            entry.encodedPrincipal == encodedPrincipal, entry.method == method
        else { return nil }
        return entry
    }

    func store(_ entry: Entry, signature: String) {
        entries.withLockedValue { entries in
            if entries.count >= StampCache.capacity { entries.removeAll(keepingCapacity: true) }
            entries[signature] = entry
        }
    }
}
