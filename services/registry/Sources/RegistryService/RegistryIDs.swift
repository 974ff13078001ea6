import Crypto
import Foundation

/// Identifiers and token secrets. Ids are random, prefixed by kind (`agt_`, `cl_`, `tok_`), so a
/// person reading a log line knows what an id names, and ids leak nothing about order or count.
enum RegistryIDs {
    static func random(_ prefix: String, bytes: Int = 12) -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        return "\(prefix)_\(hex)"
    }

    static func agent() -> String { random("agt") }
    static func cluster() -> String { random("cl") }
    static func token() -> String { random("tok") }
}

/// A token's secret as shown once to its holder: `pt_<token id>_<random>`. Only the SHA-256 of
/// the whole string is stored; the id inside lets `auth.resolve` find the row without a scan.
struct TokenSecret {
    let tokenId: String
    let text: String

    static func generate(tokenId: String) -> TokenSecret {
        let random = RegistryIDs.random("s", bytes: 24).dropFirst(2)
        return TokenSecret(tokenId: tokenId, text: "pt_\(tokenId)_\(random)")
    }

    /// The token id inside `text`, or nil when `text` is not shaped like a Platos token.
    static func tokenId(in text: String) -> String? {
        // pt, tok, <id hex>, <secret hex>; split on bytes (a Character split is needlessly slow
        // on the gateway's hottest call).
        let parts = text.utf8.split(separator: UInt8(ascii: "_"), omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].elementsEqual("pt".utf8), parts[1].elementsEqual("tok".utf8),
            !parts[2].isEmpty, !parts[3].isEmpty, let id = String(parts[2])
        else {
            return nil
        }
        return "tok_\(id)"
    }

    static func hash(_ text: String) -> Data {
        Data(SHA256.hash(data: Data(text.utf8)))
    }
}
