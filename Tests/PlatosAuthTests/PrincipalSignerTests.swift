import Crypto
import Foundation
import PlatosAuth
import PlatosProto
import PlatosRPC
import Testing

@Suite struct PrincipalSignerTests {
    let signer = try! PrincipalSigner(secret: Array(repeating: 7, count: 32))
    let principal = V1.Principal(
        scope: V1.Scope(org: "acme", project: "wally", env: "prod"), agentId: "agt_chat", clusterId: "cl_wally",
        userId: "user-✓", role: .agent, membershipVersion: 42)

    @Test func aStampVerifiesForItsMethod() throws {
        let metadata = Metadata(try signer.stamp(principal, method: "memory.recall"))
        #expect(try signer.verify(metadata, method: "memory.recall") == principal)
    }

    @Test func missingStampIsUnauthenticated() {
        #expect(throws: RPCError.principalRejected("no signed principal: call this service through the gateway")) {
            try signer.verify(Metadata(), method: "memory.recall")
        }
    }

    /// The wire format is HMAC-SHA256(secret, "platos-principal-v1\n<method>\n<issued ms>\n" +
    /// principal bytes), so a gateway and a backend of different builds agree.
    @Test func theSignatureIsTheDocumentedHMAC() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000.123)
        let entries = try signer.stamp(principal, method: "memory.recall", now: now)
        let message = Array("platos-principal-v1\nmemory.recall\n1700000000123\n".utf8) + (try principal.serializedBytes())
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Array(repeating: UInt8(7), count: 32)))
        #expect(entries.last?.value == "v1.1700000000123.\(Data(mac).base64EncodedString())")
    }

    /// Keys shorter than, equal to and longer than SHA-256's 64-byte block (a longer key is
    /// hashed first) all give swift-crypto's HMAC.
    @Test(arguments: [32, 63, 64, 65, 100, 200])
    func theSignatureMatchesSwiftCryptoForAnyKeyLength(length: Int) throws {
        let key = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let signer = try PrincipalSigner(secret: key)
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let entries = try signer.stamp(principal, method: "threads.get", now: now)
        let message = Array("platos-principal-v1\nthreads.get\n1700000000000\n".utf8) + (try principal.serializedBytes())
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key))
        #expect(entries.last?.value == "v1.1700000000000.\(Data(mac).base64EncodedString())")
        #expect(try signer.verify(Metadata(entries), method: "threads.get", now: now) == principal)
    }

    /// One signer (and its keyed HMAC) is shared by every handler task.
    @Test func oneSignerVerifiesConcurrently() async throws {
        let signer = self.signer
        let principal = self.principal
        let verified = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    var p = principal
                    p.userId = "user-\(i)"
                    let metadata = Metadata(try signer.stamp(p, method: "threads.get"))
                    return try signer.verify(metadata, method: "threads.get").userId == "user-\(i)"
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(verified == 200)
    }

    @Test func aStampIsBoundToItsMethod() throws {
        let metadata = Metadata(try signer.stamp(principal, method: "memory.recall"))
        #expect(throws: RPCError.principalRejected("invalid principal signature")) {
            try signer.verify(metadata, method: "memory.forget_user")
        }
    }

    @Test func anAlteredPrincipalIsRejected() throws {
        var metadata = Metadata(try signer.stamp(principal, method: "threads.get"))
        var other = principal
        other.clusterId = "cl_other"
        metadata[MetadataKey.principal] = Data(try other.serializedBytes()).base64EncodedString()
        #expect(throws: RPCError.principalRejected("invalid principal signature")) {
            try signer.verify(metadata, method: "threads.get")
        }
    }

    @Test func anotherSecretsStampIsRejected() throws {
        let forger = try PrincipalSigner(secret: Array(repeating: 8, count: 32))
        let metadata = Metadata(try forger.stamp(principal, method: "threads.get"))
        #expect(throws: RPCError.principalRejected("invalid principal signature")) {
            try signer.verify(metadata, method: "threads.get")
        }
    }

    @Test func anOldStampIsRejected() throws {
        let metadata = Metadata(try signer.stamp(principal, method: "threads.get", now: Date(timeIntervalSinceNow: -3600)))
        #expect(throws: RPCError.principalRejected("principal signature expired")) {
            try signer.verify(metadata, method: "threads.get")
        }
    }

    /// Even a stamp this signer made, with an issue time at the edge of 64 bits, is only "expired".
    @Test func anIssueTimeAtTheEdgeOfSixtyFourBitsIsExpiredNotACrash() throws {
        let oldest = Date(timeIntervalSince1970: Double(Int64.min) / 1000)
        let metadata = Metadata(try signer.stamp(principal, method: "threads.get", now: oldest))
        #expect(metadata[MetadataKey.principalSignature]?.hasPrefix("v1.-9223372036854775808.") == true)
        #expect(throws: RPCError.principalRejected("principal signature expired")) {
            try signer.verify(metadata, method: "threads.get")
        }
    }

    @Test func garbageIsRejectedNotCrashed() {
        for signature in [
            "", "v1", "v1.", "v1.1", "v1..AAAA", "v1.1.AAAA.AAAA", "v1.x.y", "v2.1.AAAA", "v1.1.!!!", "v1.1.é",
            // Issue times whose distance from now overflows 64 bits: once a crash of any backend.
            "v1.-9223372036854775808.AAAA", "v1.9223372036854775807.AAAA", "v1.-1.AAAA",
        ] {
            let metadata: Metadata = [MetadataKey.principal: "AAAA", MetadataKey.principalSignature: signature]
            #expect(throws: RPCError.self) { try signer.verify(metadata, method: "threads.get") }
        }
    }

    @Test func aStampWithAnExtraSegmentIsRejected() throws {
        var metadata = Metadata(try signer.stamp(principal, method: "memory.recall"))
        metadata[MetadataKey.principalSignature] = metadata[MetadataKey.principalSignature]! + ".AAAA"
        #expect(throws: RPCError.principalRejected("malformed principal signature")) {
            try signer.verify(metadata, method: "memory.recall")
        }
    }

    /// A stamp is reused for the same principal and method within a second, and only then.
    @Test func stampsAreReusedForUpToASecond() throws {
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        let first = try signer.stamp(principal, method: "memory.recall", now: t0)
        #expect(try signer.stamp(principal, method: "memory.recall", now: t0 + 0.999) == first)
        #expect(try signer.stamp(principal, method: "memory.recall", now: t0 + 1.0) != first)
        #expect(try signer.stamp(principal, method: "memory.write", now: t0 + 1.0) != first)
        var other = principal
        other.userId = "someone-else"
        #expect(try signer.stamp(other, method: "memory.recall", now: t0 + 1.0) != first)
    }

    /// A stamp verified once still has its age, method and principal checked when it comes again.
    @Test func aVerifiedStampIsStillCheckedWhenItComesAgain() throws {
        let t0 = Date()
        let metadata = Metadata(try signer.stamp(principal, method: "memory.recall", now: t0))
        #expect(try signer.verify(metadata, method: "memory.recall", now: t0) == principal)
        #expect(try signer.verify(metadata, method: "memory.recall", now: t0 + 1) == principal)
        #expect(throws: RPCError.principalRejected("invalid principal signature")) {
            try signer.verify(metadata, method: "memory.forget_user", now: t0)
        }
        #expect(throws: RPCError.principalRejected("principal signature expired")) {
            try signer.verify(metadata, method: "memory.recall", now: t0 + 301)
        }
        var altered = metadata
        var other = principal
        other.role = .admin
        altered[MetadataKey.principal] = Data(try other.serializedBytes()).base64EncodedString()
        #expect(throws: RPCError.principalRejected("invalid principal signature")) {
            try signer.verify(altered, method: "memory.recall", now: t0)
        }
    }

    @Test func shortSecretsAreRefused() {
        #expect(throws: RPCError.self) { try PrincipalSigner(secret: [1, 2, 3]) }
    }
}
