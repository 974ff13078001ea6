import Foundation

/// A `map<string, string>` as stored in a TEXT column: a JSON object, so SQLite's `json_each` can
/// filter on it in SQL.
enum MetadataColumn {
    static func encode(_ metadata: [String: String]) -> String {
        // Most rows have none; skip the encoder for them.
        if metadata.isEmpty { return "{}" }
        guard let data = try? JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys]) else {
            return "{}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) -> [String: String] {
        if text == "{}" || text.isEmpty { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: String] else {
            return [:]
        }
        return object
    }
}
