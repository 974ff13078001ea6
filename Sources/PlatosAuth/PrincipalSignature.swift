import Crypto
import Foundation
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// The gateway's stamp on a downstream call: the caller's principal, and an HMAC-SHA256 over it
/// made with the internal secret, so a backend can tell a principal the gateway resolved from
/// one a caller wrote itself.
///
/// The MAC covers the method name and an issue time as well as the principal bytes: a stamp
/// lifted from one call cannot be replayed on another method, nor after `maxAge`.
public struct PrincipalSigner: Sendable {
    /// HMAC-SHA256 with the secret already absorbed: keying it hashes the padded key twice, so
    /// every call starts from a copy of this one instead (HMAC is a value type; a copy's update
    /// leaves the original untouched).
    private let keyed: KeyedHMAC
    /// How old a stamp may be when it arrives. Generous enough for clock skew between hosts.
    public var maxAge: Duration = .seconds(300)

    /// `secret` is the internal secret shared by the gateway and the backends (at least 32 bytes).
    public init(secret: [UInt8]) throws {
        guard secret.count >= 32 else {
            throw RPCError(.failedPrecondition, "the internal secret must be at least 32 bytes, got \(secret.count)")
        }
        keyed = KeyedHMAC(HMAC(key: SymmetricKey(data: secret)))
    }

    /// Metadata entries that carry `principal` on a call to `method`.
    public func stamp(_ principal: V1.Principal, method: String, now: Date = Date()) throws -> [V1.MetadataEntry] {
        let bytes = try principal.serializedBytes()
        let issued = String(Int64(now.timeIntervalSince1970 * 1000))
        let mac = mac(method, issued, bytes)
        return [
            V1.MetadataEntry(key: MetadataKey.principal, value: Data(bytes).base64EncodedString()),
            V1.MetadataEntry(key: MetadataKey.principalSignature, value: "v1.\(issued).\(Data(mac).base64EncodedString())"),
        ]
    }

    /// The principal stamped on a call, or `UNAUTHENTICATED` when it is missing, altered, made for
    /// another method, or too old.
    public func verify(_ metadata: Metadata, method: String, now: Date = Date()) throws -> V1.Principal {
        guard let encoded = metadata[MetadataKey.principal], let signature = metadata[MetadataKey.principalSignature]
        else {
            throw RPCError(.unauthenticated, "no signed principal: call this service through the gateway")
        }
        // "v1.<issued ms>.<base64 mac>", scanned as UTF-8 bytes: splitting a String by Character
        // walks grapheme clusters (once a tenth of a backend's per-call cost), and even a generic
        // byte split allocates an array of slices per call.
        let utf8 = signature.utf8
        guard utf8.starts(with: "v1.".utf8) else { throw RPCError(.unauthenticated, "malformed principal signature") }
        let issuedStart = utf8.index(utf8.startIndex, offsetBy: 3)
        let issuedEnd = utf8[issuedStart...].firstIndex(of: UInt8(ascii: ".")) ?? utf8.endIndex
        let macStart = issuedEnd == utf8.endIndex ? issuedEnd : utf8.index(after: issuedEnd)
        guard issuedEnd != utf8.endIndex, !utf8[macStart...].contains(UInt8(ascii: ".")),
            let issuedText = String(utf8[issuedStart..<issuedEnd]),
            let issuedMs = Int64(issuedText), let macText = String(utf8[macStart...]),
            let mac = Data(base64Encoded: macText), let bytes = Data(base64Encoded: encoded)
        else {
            throw RPCError(.unauthenticated, "malformed principal signature")
        }
        let ageMs = Int64(now.timeIntervalSince1970 * 1000) - issuedMs
        let maxAgeMs = maxAge.components.seconds * 1000
        guard abs(ageMs) <= maxAgeMs else {
            throw RPCError(.unauthenticated, "principal signature expired")
        }
        let principalBytes = bytes.withUnsafeBytes { Array($0) }
        let expected = self.mac(method, issuedText, principalBytes)
        // Constant time: how much of a forged MAC was right must not show in the timing.
        guard mac.count == expected.count,
            mac.withUnsafeBytes({ zip($0, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } }) == 0
        else {
            throw RPCError(.unauthenticated, "invalid principal signature")
        }
        do {
            return try V1.Principal(serializedBytes: principalBytes)
        } catch {
            throw RPCError(.unauthenticated, "malformed principal")
        }
    }

    /// The MAC over method, issue time and principal bytes. The message is laid out in one
    /// buffer and fed to the HMAC at once: each `update` call goes through the generic
    /// `DataProtocol` path, which profiled at half the cost of signing.
    private func mac(_ method: String, _ issued: String, _ principal: [UInt8]) -> [UInt8] {
        var message: [UInt8] = []
        message.reserveCapacity(Self.domain.count + method.utf8.count + issued.utf8.count + 2 + principal.count)
        message += Self.domain
        message += method.utf8
        message.append(0x0A)
        message += issued.utf8
        message.append(0x0A)
        message += principal
        var hmac = keyed.hmac
        message.withUnsafeBytes { hmac.update(data: $0) }
        return Array(hmac.finalize())
    }

    private static let domain = Array("platos-principal-v1\n".utf8)
}

/// A keyed HMAC shared by every copy of a signer. Only ever copied, never mutated, so sharing it
/// across threads is safe; `HMAC` itself is not marked Sendable.
private final class KeyedHMAC: @unchecked Sendable {
    let hmac: HMAC<SHA256>
    init(_ hmac: HMAC<SHA256>) { self.hmac = hmac }
}

/// The principal the gateway signs its own calls with (`auth.resolve`, `registry.watch`). Its
/// scope uses names no real scope can have (scope names match `[a-z0-9-]{1,63}`), so no token
/// can ever resolve to it.
public enum ServicePrincipal {
    public static let internalScope = V1.Scope(org: "_platos", project: "_internal", env: "_internal")
    public static let gateway = V1.Principal(scope: internalScope, agentId: "platos-gateway", role: .admin)

    public static func isInternal(_ principal: V1.Principal) -> Bool {
        principal.scope == internalScope
    }
}
