import Foundation

/// Splits text into the words the full-text index knows: runs of letters and digits, lower-cased,
/// with diacritics removed (so "Café" and "cafe" meet). Memory content and recall queries go
/// through this same function, which is what lets a query word find an indexed word.
///
/// Everything else (punctuation, quotes, `*`, `-`, parentheses, whitespace) separates words and
/// is dropped, so nothing a user types can reach FTS5 as query syntax.
enum TextTokenizer {
    /// The words of `text`, in order, at most `limit` of them.
    static func words(_ text: String, limit: Int) -> [String] {
        var words: [String] = []
        if text.utf8.allSatisfy({ $0 < 0x80 }) {
            asciiWords(text, limit: limit, into: &words)
        } else {
            unicodeWords(text, limit: limit, into: &words)
        }
        return words
    }

    // Most content is ASCII; this path touches bytes only.
    private static func asciiWords(_ text: String, limit: Int, into words: inout [String]) {
        var current: [UInt8] = []
        func flush() {
            if !current.isEmpty, words.count < limit { words.append(String(decoding: current, as: UTF8.self)) }
            current.removeAll(keepingCapacity: true)
        }
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39, 0x61...0x7a: current.append(byte)
            case 0x41...0x5a: current.append(byte + 0x20)
            default: flush()
            }
            if words.count >= limit { return }
        }
        flush()
    }

    private static func unicodeWords(_ text: String, limit: Int, into words: inout [String]) {
        // Canonical decomposition puts diacritics in combining marks of their own, which are
        // then dropped: "é" (U+00E9) becomes "e" + U+0301.
        let decomposed = text.decomposedStringWithCanonicalMapping
        var current = String.UnicodeScalarView()
        func flush() {
            if !current.isEmpty, words.count < limit { words.append(String(current)) }
            current = String.UnicodeScalarView()
        }
        for scalar in decomposed.unicodeScalars {
            let properties = scalar.properties
            switch properties.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark:
                continue
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                .decimalNumber, .letterNumber, .otherNumber:
                current.append(contentsOf: properties.lowercaseMapping.unicodeScalars)
            default:
                flush()
            }
            if words.count >= limit { return }
        }
        flush()
    }
}
