import ProtobufCSwift

/// Tags and metadata are stored as JSON text: arbitrary strings round-trip exactly, and SQLite's
/// JSON functions can read them if an operator needs to.
///
/// Every recalled or listed row decodes both columns, so they go through the codec's own small
/// JSON reader and writer (``JSONValue``), not Foundation's `JSONEncoder`/`JSONDecoder`, which
/// profiled at more per row than the SQLite query that found it. Rows written by Foundation's
/// encoder before (`\/` escapes, any whitespace) read the same.
enum JSONColumn {
    static func encode(_ strings: [String]) -> String {
        strings.isEmpty ? "[]" : JSONValue.array(strings.map(JSONValue.string)).serialized()
    }

    /// Keys sorted, so equal maps are equal text.
    static func encode(_ dictionary: [String: String]) -> String {
        if dictionary.isEmpty { return "{}" }
        return JSONValue.object(dictionary.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
    }

    /// The strings of a stored array; [] for text that is not an array of strings.
    static func strings(_ text: String) -> [String] {
        if text == "[]" { return [] }
        guard case .array(let items)? = try? JSONValue(parsing: text) else { return [] }
        var strings: [String] = []
        strings.reserveCapacity(items.count)
        for item in items {
            guard case .string(let string) = item else { return [] }
            strings.append(string)
        }
        return strings
    }

    /// The pairs of a stored object; [:] for text that is not an object of strings.
    static func dictionary(_ text: String) -> [String: String] {
        if text == "{}" { return [:] }
        guard case .object(let members)? = try? JSONValue(parsing: text) else { return [:] }
        var dictionary: [String: String] = Dictionary(minimumCapacity: members.count)
        for (key, value) in members {
            guard case .string(let string) = value else { return [:] }
            dictionary[key] = string
        }
        return dictionary
    }
}
