import Foundation

/// An opaque continuation token: base64url of `<kind>:<position>`. The kind keeps a history
/// token from being used on a list. A caller who forges a token moves only within its own scope,
/// because every page query applies the scope again.
enum PageToken {
    enum Kind: String {
        case memories = "m1"
        case history = "h1"
    }

    static func encode(_ kind: Kind, _ position: Int64) -> String {
        Data("\(kind.rawValue):\(position)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The position in `token`, nil for an empty token (the first page); throws for anything
    /// this service did not issue for `kind`.
    static func decode(_ token: String, as kind: Kind) throws -> Int64? {
        if token.isEmpty { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard token.utf8.count <= 64, let data = Data(base64Encoded: base64) else {
            throw MemoryValidation.invalid("page.page_token is not a token this service issued")
        }
        let text = String(decoding: data, as: UTF8.self)
        let prefix = kind.rawValue + ":"
        guard text.hasPrefix(prefix), let position = Int64(text.dropFirst(prefix.count)) else {
            throw MemoryValidation.invalid("page.page_token is not a token this service issued for this method")
        }
        return position
    }
}
