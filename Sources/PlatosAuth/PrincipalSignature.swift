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
    /// HMAC-SHA256 with the secret already absorbed, shared by every copy of the signer.
    private let keyed: KeyedHMAC
    private let secret: [UInt8]
    private let stamps = StampCache()
    private let verified = VerifiedStampCache()
    /// How old a stamp may be when it arrives: generous for the clock skew of NTP-synced hosts,
    /// and the window in which a stamp seen on the internal network could be replayed (for its
    /// own principal and method only; the MAC does not cover the payload).
    public var maxAge: Duration = .seconds(60)

    /// `secret` is the internal secret shared by the gateway and the backends (at least 32 bytes).
    public init(secret: [UInt8]) throws {
        guard secret.count >= 32 else {
            throw RPCError(.failedPrecondition, "the internal secret must be at least 32 bytes, got \(secret.count)")
        }
        keyed = KeyedHMAC(key: secret)
        self.secret = secret
    }

    /// A 256-bit key for `purpose` (HKDF-SHA256 of the internal secret): a service's own use of
    /// the secret, such as sealing page tokens, never reuses the stamps' key.
    public func derivedKey(for purpose: String) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: secret), info: Data(purpose.utf8), outputByteCount: 32)
        return key.withUnsafeBytes { Array($0) }
    }

    /// Metadata entries that carry `principal` on a call to `method`. A stamp made for the same
    /// principal and method less than a second ago is reused (see ``StampCache``).
    public func stamp(_ principal: V1.Principal, method: String, now: Date = Date()) throws -> [V1.MetadataEntry] {
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        return try stamps.stamp(StampCache.Key(principal: principal, method: method), nowMs: nowMs) {
            let bytes = try principal.serializedBytes()
            let issued = String(nowMs)
            let mac = mac(method, issued, bytes)
            return [
                V1.MetadataEntry(key: MetadataKey.principal, value: Data(bytes).base64EncodedString()),
                V1.MetadataEntry(
                    key: MetadataKey.principalSignature, value: "v1.\(issued).\(Data(mac).base64EncodedString())"),
            ]
        }
    }

    /// The principal stamped on a call, or `UNAUTHENTICATED` when it is missing, altered, made for
    /// another method, or too old.
    public func verify(_ metadata: Metadata, method: String, now: Date = Date()) throws -> V1.Principal {
        guard let encoded = metadata[MetadataKey.principal], let signature = metadata[MetadataKey.principalSignature]
        else {
            throw RPCError.principalRejected("no signed principal: call this service through the gateway")
        }
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        if let seen = verified.entry(signature: signature, encodedPrincipal: encoded, method: method) {
            try checkAge(issuedMs: seen.issuedMs, nowMs: nowMs)
            return seen.principal
        }
        // "v1.<issued ms>.<base64 mac>", scanned as UTF-8 bytes: splitting a String by Character
        // walks grapheme clusters (once a tenth of a backend's per-call cost), and even a generic
        // byte split allocates an array of slices per call.
        let utf8 = signature.utf8
        guard utf8.starts(with: "v1.".utf8) else { throw RPCError.principalRejected("malformed principal signature") }
        let issuedStart = utf8.index(utf8.startIndex, offsetBy: 3)
        let issuedEnd = utf8[issuedStart...].firstIndex(of: UInt8(ascii: ".")) ?? utf8.endIndex
        let macStart = issuedEnd == utf8.endIndex ? issuedEnd : utf8.index(after: issuedEnd)
        guard issuedEnd != utf8.endIndex, !utf8[macStart...].contains(UInt8(ascii: ".")),
            let issuedText = String(utf8[issuedStart..<issuedEnd]),
            let issuedMs = Int64(issuedText), let macText = String(utf8[macStart...]),
            let mac = Data(base64Encoded: macText), let bytes = Data(base64Encoded: encoded)
        else {
            throw RPCError.principalRejected("malformed principal signature")
        }
        // The MAC first: nothing else in the stamp is trusted, or even looked at, before it holds.
        let principalBytes = bytes.withUnsafeBytes { Array($0) }
        let expected = self.mac(method, issuedText, principalBytes)
        guard ConstantTime.equal(mac, expected) else {
            throw RPCError.principalRejected("invalid principal signature")
        }
        try checkAge(issuedMs: issuedMs, nowMs: nowMs)
        let principal: V1.Principal
        do {
            principal = try V1.Principal(serializedBytes: principalBytes)
        } catch {
            throw RPCError.principalRejected("malformed principal")
        }
        verified.store(
            .init(encodedPrincipal: encoded, method: method, issuedMs: issuedMs, principal: principal),
            signature: signature)
        return principal
    }

    /// Without overflow whatever `issuedMs` holds: a stamp is only parsed text until its MAC holds.
    private func checkAge(issuedMs: Int64, nowMs: Int64) throws {
        let (age, overflow) = nowMs.subtractingReportingOverflow(issuedMs)
        guard !overflow, age.magnitude <= UInt64(clamping: maxAge.components.seconds) * 1000 else {
            throw RPCError.principalRejected("principal signature expired")
        }
    }

    /// The MAC over method, issue time and principal bytes, laid out in one buffer and hashed at
    /// once.
    private func mac(_ method: String, _ issued: String, _ principal: [UInt8]) -> [UInt8] {
        var message: [UInt8] = []
        message.reserveCapacity(Self.domain.count + method.utf8.count + issued.utf8.count + 2 + principal.count)
        message += Self.domain
        message += method.utf8
        message.append(0x0A)
        message += issued.utf8
        message.append(0x0A)
        message += principal
        return message.withUnsafeBytes { keyed.mac($0) }
    }

    private static let domain = Array("platos-principal-v1\n".utf8)
}

/// HMAC-SHA256 (RFC 2104) on swift-crypto's `SHA256`, with the two keyed states (key ⊕ ipad,
/// key ⊕ opad) hashed once: each MAC then costs copies of those states, the message's blocks and
/// one outer block. swift-crypto's own `HMAC<H>` is generic and, called from another module, ran
/// unspecialised (metadata lookups and `DataProtocol` walks were a third of signing). The
/// signature test pins the result to swift-crypto's `HMAC<SHA256>`.
///
/// @unchecked Sendable: both states are only ever copied, never mutated.
private final class KeyedHMAC: @unchecked Sendable {
    private let inner: SHA256
    private let outer: SHA256

    init(key: [UInt8]) {
        let blockSize = 64
        var block = key.count > blockSize ? Array(SHA256.hash(data: key)) : key
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        var inner = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
    }

    func mac(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        var inner = self.inner
        inner.update(bufferPointer: message)
        var outer = self.outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize().withUnsafeBytes { Array($0) }
    }
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

extension RPCError {
    /// UNAUTHENTICATED for a call whose gateway stamp a backend refused (missing, altered, too
    /// old, incomplete), marked so the gateway can tell its own deployment's fault (services that
    /// do not share one internal secret, clocks a minute apart) from a caller's bad token.
    public static func principalRejected(_ message: String) -> RPCError {
        RPCError(.unauthenticated, message, details: [MetadataKey.principalRejected: "true"])
    }

    /// True for a ``principalRejected(_:)`` answer.
    public var isPrincipalRejection: Bool {
        code == .unauthenticated && details[MetadataKey.principalRejected] == "true"
    }
}
