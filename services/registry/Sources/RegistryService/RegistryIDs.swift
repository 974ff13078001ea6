import Crypto
import Foundation
import PlatosAuth

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
        // pt_tok_<id hex>_<secret hex>: scanned as bytes, on the gateway's hottest call.
        let bytes = text.utf8
        guard bytes.starts(with: "pt_tok_".utf8) else { return nil }
        let idStart = bytes.index(bytes.startIndex, offsetBy: 7)
        guard let idEnd = bytes[idStart...].firstIndex(of: UInt8(ascii: "_")), idEnd > idStart else { return nil }
        let secret = bytes[bytes.index(after: idEnd)...]
        guard !secret.isEmpty, !secret.contains(UInt8(ascii: "_")), let id = String(bytes[idStart..<idEnd]) else {
            return nil
        }
        return "tok_\(id)"
    }

    /// Whether `text` hashes to `storedHash`, compared in constant time.
    static func matches(_ text: String, storedHash: Data) -> Bool {
        ConstantTime.equal(storedHash, SHA256.hash(data: Array(text.utf8)))
    }

    static func hash(_ text: String) -> Data {
        Data(SHA256.hash(data: Data(text.utf8)))
    }
}
