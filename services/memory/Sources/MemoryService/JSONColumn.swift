import Foundation

/// Tags and metadata are stored as JSON text: arbitrary strings round-trip exactly, and SQLite's
/// JSON functions can read them if an operator needs to.
///
/// Every recalled or listed row decodes both columns, so they are read and written by hand
/// rather than through Foundation's `JSONEncoder`/`JSONDecoder`, which cost more per row than the
/// SQLite query that found it. The shapes are fixed (an array of strings, an object of strings),
/// so the parser is small; text it does not understand falls back to `JSONDecoder`.
enum JSONColumn {
    static func encode(_ strings: [String]) -> String {
        if strings.isEmpty { return "[]" }
        var out = "["
        for (i, string) in strings.enumerated() {
            if i > 0 { out += "," }
            appendQuoted(string, to: &out)
        }
        out += "]"
        return out
    }

    /// Keys sorted, so equal maps are equal text.
    static func encode(_ dictionary: [String: String]) -> String {
        if dictionary.isEmpty { return "{}" }
        var out = "{"
        for (i, key) in dictionary.keys.sorted().enumerated() {
            if i > 0 { out += "," }
            appendQuoted(key, to: &out)
            out += ":"
            appendQuoted(dictionary[key]!, to: &out)
        }
        out += "}"
        return out
    }

    static func strings(_ text: String) -> [String] {
        if text == "[]" { return [] }
        var parser = Parser(text)
        if let strings = parser.stringArray() { return strings }
        return (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }

    static func dictionary(_ text: String) -> [String: String] {
        if text == "{}" { return [:] }
        var parser = Parser(text)
        if let dictionary = parser.stringObject() { return dictionary }
        return (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
    }

    private static func appendQuoted(_ string: String, to out: inout String) {
        out += "\""
        // Only `"`, `\` and control characters need escaping; everything else is copied as is.
        if !string.utf8.contains(where: { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }) {
            out += string
        } else {
            for scalar in string.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// A strict reader of the two shapes above (RFC 8259 strings, any whitespace); nil for
    /// anything else.
    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(_ text: String) { bytes = Array(text.utf8) }

        mutating func stringArray() -> [String]? {
            guard take(0x5B) else { return nil }  // [
            var strings: [String] = []
            if take(0x5D) { return atEnd() ? strings : nil }  // ]
            repeat {
                guard let string = string() else { return nil }
                strings.append(string)
            } while take(0x2C)  // ,
            return take(0x5D) && atEnd() ? strings : nil
        }

        mutating func stringObject() -> [String: String]? {
            guard take(0x7B) else { return nil }  // {
            var dictionary: [String: String] = [:]
            if take(0x7D) { return atEnd() ? dictionary : nil }  // }
            repeat {
                guard let key = string(), take(0x3A), let value = string() else { return nil }  // :
                dictionary[key] = value
            } while take(0x2C)
            return take(0x7D) && atEnd() ? dictionary : nil
        }

        private mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        private mutating func take(_ byte: UInt8) -> Bool {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        private mutating func atEnd() -> Bool {
            skipWhitespace()
            return index == bytes.count
        }

        private mutating func string() -> String? {
            guard take(0x22) else { return nil }
            let start = index
            // The common case, no escapes: one copy of the bytes between the quotes.
            while index < bytes.count, bytes[index] != 0x22, bytes[index] != 0x5C, bytes[index] >= 0x20 { index += 1 }
            guard index < bytes.count else { return nil }
            if bytes[index] == 0x22 {
                defer { index += 1 }
                return String(decoding: bytes[start..<index], as: UTF8.self)
            }
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: String(decoding: bytes[start..<index], as: UTF8.self).unicodeScalars)
            var utf8: [UInt8] = []
            func flushUTF8() {
                scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
                utf8.removeAll()
            }
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case 0x22:
                    flushUTF8()
                    return String(scalars)
                case 0x5C:
                    flushUTF8()
                    guard let scalar = escape() else { return nil }
                    scalars.append(scalar)
                case ..<0x20:
                    return nil
                default:
                    utf8.append(byte)
                }
            }
            return nil
        }

        /// The character after a backslash (already consumed).
        private mutating func escape() -> Unicode.Scalar? {
            guard index < bytes.count else { return nil }
            let byte = bytes[index]
            index += 1
            switch byte {
            case 0x22: return "\""
            case 0x5C: return "\\"
            case 0x2F: return "/"
            case 0x62: return "\u{08}"
            case 0x66: return "\u{0C}"
            case 0x6E: return "\n"
            case 0x72: return "\r"
            case 0x74: return "\t"
            case 0x75:
                guard let high = hex4() else { return nil }
                guard (0xD800...0xDBFF).contains(high) else { return Unicode.Scalar(high) }
                // A surrogate pair: \uD83D\uDE00.
                guard index + 1 < bytes.count, bytes[index] == 0x5C, bytes[index + 1] == 0x75 else { return nil }
                index += 2
                guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            default: return nil
            }
        }

        private mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for byte in bytes[index..<index + 4] {
                guard let digit = Character(Unicode.Scalar(byte)).hexDigitValue else { return nil }
                value = value << 4 | UInt32(digit)
            }
            index += 4
            return value
        }
    }
}
