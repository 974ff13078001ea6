import Crypto
import Foundation

/// Continuation tokens, sealed: AES-GCM over `<kind>:<position>` with a key derived from the
/// internal secret, in base64url. The position is a row number of the whole database, so an
/// open token would let any caller watch how fast every tenant writes; sealed, it says nothing,
/// and one this service did not issue (or issued for the other method) does not open. Tokens
/// outlive restarts, since the key comes from the secret. A caller who replays a token moves
/// only within its own scope anyway: every page query applies the scope again.
struct PageTokens: Sendable {
    enum Kind: String {
        case memories = "m1"
        case history = "h1"
    }

    /// The AES-256 key's bytes (`SymmetricKey` is not `Sendable`).
    let key: [UInt8]

    static let purpose = "platos-memory page tokens v1"

    /// Positions are written with 19 digits (any Int64 ≥ 0 fits): AES-GCM keeps the plaintext's
    /// length, so a shorter number would give a shorter token, and its length away.
    static let positionDigits = 19

    func encode(_ kind: Kind, _ position: Int64) -> String {
        let digits = String(position)
        let padded = String(repeating: "0", count: max(0, Self.positionDigits - digits.utf8.count)) + digits
        // Sealing a few bytes with a fresh random nonce cannot fail.
        let sealed = try! AES.GCM.seal(Data("\(kind.rawValue):\(padded)".utf8), using: SymmetricKey(data: key))
        return sealed.combined!.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The position in `token`, nil for an empty token (the first page); throws for anything
    /// this service did not issue for `kind`.
    func decode(_ token: String, as kind: Kind) throws -> Int64? {
        if token.isEmpty { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard token.utf8.count <= 128, let data = Data(base64Encoded: base64),
            let box = try? AES.GCM.SealedBox(combined: data),
            let plain = try? AES.GCM.open(box, using: SymmetricKey(data: key))
        else {
            throw MemoryValidation.invalid("page.page_token is not a token this service issued")
        }
        let text = String(decoding: plain, as: UTF8.self)
        let prefix = kind.rawValue + ":"
        guard text.hasPrefix(prefix), let position = Int64(text.dropFirst(prefix.count)) else {
            throw MemoryValidation.invalid("page.page_token is not a token this service issued for this method")
        }
        return position
    }
}
