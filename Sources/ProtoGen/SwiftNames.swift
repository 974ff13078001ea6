/// Spelling rules from proto names to Swift names.
enum SwiftNames {
    /// `call_id` → `callId`; `FRAME_KIND_REQUEST` (after the prefix is cut) → `request`.
    static func lowerCamel(_ snake: String) -> String {
        let parts = snake.split(separator: "_").map { $0.lowercased() }
        guard let first = parts.first else { return snake }
        let joined = first + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
        return escaped(joined)
    }

    /// `add_member` and `AddMember` → `add_member`, as the wire method names spell it.
    static func snake(_ camel: String) -> String {
        var out = ""
        for (i, ch) in camel.enumerated() {
            if ch.isUppercase, i > 0 { out += "_" }
            out += ch.lowercased()
        }
        return out
    }

    /// `FrameKind` → `FRAME_KIND_`, the prefix protoc's style puts on every enum value.
    static func enumValuePrefix(_ enumName: String) -> String {
        snake(enumName).uppercased() + "_"
    }

    static let keywords: Set<String> = [
        "as", "break", "case", "catch", "class", "continue", "default", "defer", "do", "else", "enum",
        "extension", "fallthrough", "false", "for", "func", "guard", "if", "import", "in", "init", "inout",
        "internal", "is", "let", "nil", "operator", "private", "protocol", "public", "repeat", "rethrows",
        "return", "self", "Self", "static", "struct", "subscript", "super", "switch", "throw", "throws",
        "true", "try", "typealias", "var", "where", "while", "Type", "protocol",
    ]

    static func escaped(_ name: String) -> String {
        keywords.contains(name) ? "`\(name)`" : name
    }
}
