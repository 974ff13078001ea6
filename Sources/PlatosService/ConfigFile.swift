import Foundation

/// A Platos config file: a small subset of TOML.
///
/// ```toml
/// # shared by every service that has the key
/// host = "127.0.0.1"
/// data-dir = "./data"
///
/// [memory]            # only platos-memory; overrides the top-level keys
/// port = 7402
///
/// [gateway]
/// registry = "127.0.0.1:7401"
/// ```
///
/// One `key = value` per line; keys are the flag names. Values are strings in double quotes (with
/// `\"`, `\\`, `\n`, `\t` escapes), in single quotes (literal), or bare (the rest of the line, for
/// numbers and simple words). `#` starts a comment outside quotes. Sections are `[registry]`,
/// `[memory]`, `[threads]` and `[gateway]`. A top-level key applies to every service that has it
/// (and must belong to at least one); a key in a section must belong to that service. Anything
/// else (an unknown key or section, a key set twice in one table, a malformed line) is an error
/// naming the file and line.
public struct ConfigFile: Sendable {
    public struct Entry: Sendable, Equatable {
        /// The section (`[memory]`), or nil at top level.
        public var section: ServiceKind?
        public var key: String
        public var value: String
        public var line: Int
    }

    public let path: String
    public let entries: [Entry]

    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ServiceOptionsError("cannot read config file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ServiceOptionsError("\(path) is not UTF-8 text")
        }
        return try ConfigFile(path: path, text: text)
    }

    public init(path: String, text: String) throws {
        self.path = path
        var entries: [Entry] = []
        var section: ServiceKind?
        var seen = Set<String>()
        var lineNumber = 0
        // "\r\n" is one Character in Swift: split on both line ends.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            func fail(_ message: String) -> ServiceOptionsError { ServiceOptionsError("\(path):\(lineNumber): \(message)") }
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            line = line.drop(while: \.isWhitespace)
            if line.isEmpty || line.first == "#" { continue }

            if line.first == "[" {
                guard let close = line.firstIndex(of: "]") else { throw fail("a section header needs a closing ']'") }
                let name = line[line.index(after: line.startIndex)..<close].trimmingCharacters(in: .whitespaces)
                guard Self.isBlankOrComment(line[line.index(after: close)...]) else {
                    throw fail("unexpected text after [\(name)]")
                }
                guard let kind = ServiceKind(rawValue: name) else {
                    throw fail("unknown section [\(name)]; sections: \(ServiceKind.allCases.map { "[\($0.rawValue)]" }.joined(separator: ", "))")
                }
                section = kind
                continue
            }

            guard let equals = line.firstIndex(of: "=") else { throw fail("expected 'key = value'") }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty, key.unicodeScalars.allSatisfy(Self.isKeyCharacter) else {
                throw fail("'\(key)' is not a key; keys are letters, digits, '-' and '_'")
            }
            let known = section.map(\.keys) ?? Self.allKeys
            guard known.contains(key) else {
                let table = section.map { "[\($0.rawValue)]" } ?? "top level"
                throw fail("unknown key '\(key)' (\(table)); keys: \(known.joined(separator: ", "))")
            }
            let tableKey = "\(section?.rawValue ?? "").\(key)"
            guard seen.insert(tableKey).inserted else { throw fail("'\(key)' is set twice") }
            let value = try Self.parseValue(line[line.index(after: equals)...], fail: fail)
            entries.append(Entry(section: section, key: key, value: value, line: lineNumber))
        }
        self.entries = entries
    }

    /// The settings for `kind`, in the order to apply them: the top-level keys it has, then its section.
    public func entries(for kind: ServiceKind) -> [Entry] {
        let keys = Set(kind.keys)
        return entries.filter { $0.section == nil && keys.contains($0.key) } + entries.filter { $0.section == kind }
    }

    /// Every key some service takes: what the top level accepts.
    static var allKeys: [String] {
        var keys = ServiceOptions.commonKeys
        for kind in ServiceKind.allCases {
            for key in kind.keys where !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    private static func isKeyCharacter(_ c: Unicode.Scalar) -> Bool {
        ("0"..."9").contains(c) || ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "-" || c == "_"
    }

    private static func isBlankOrComment(_ rest: Substring) -> Bool {
        let trimmed = rest.drop(while: \.isWhitespace)
        return trimmed.isEmpty || trimmed.first == "#"
    }

    private static func parseValue(_ text: Substring, fail: (String) -> ServiceOptionsError) throws -> String {
        let text = text.drop(while: \.isWhitespace)
        guard let first = text.first else { throw fail("missing value") }
        switch first {
        case "\"":
            var value = ""
            var index = text.index(after: text.startIndex)
            while index < text.endIndex {
                let c = text[index]
                if c == "\"" {
                    guard isBlankOrComment(text[text.index(after: index)...]) else {
                        throw fail("unexpected text after the closing quote")
                    }
                    return value
                }
                if c == "\\" {
                    index = text.index(after: index)
                    guard index < text.endIndex else { break }
                    switch text[index] {
                    case "\"": value.append("\"")
                    case "\\": value.append("\\")
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    default: throw fail("unsupported escape '\\\(text[index])' (use \\\", \\\\, \\n or \\t)")
                    }
                } else {
                    value.append(c)
                }
                index = text.index(after: index)
            }
            throw fail("unterminated string")
        case "'":
            let body = text.dropFirst()
            guard let close = body.firstIndex(of: "'") else { throw fail("unterminated string") }
            guard isBlankOrComment(body[body.index(after: close)...]) else {
                throw fail("unexpected text after the closing quote")
            }
            return String(body[..<close])
        default:
            let bare = text.prefix { $0 != "#" }.trimmingCharacters(in: .whitespaces)
            guard !bare.isEmpty else { throw fail("missing value") }
            return bare
        }
    }
}
