import ArgumentParser
import Foundation
import ProtobufCSwift

/// How `platos` prints a response.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// proto3 JSON, pretty-printed: what scripts and `jq` read.
    case json
    /// A table for people: a list response becomes one row per item, anything else one row per
    /// field.
    case table

    func render(_ value: JSONValue) -> String {
        switch self {
        case .json: value.serialized(pretty: true)
        case .table: TableRenderer.render(value)
        }
    }

    /// One message of a stream: JSON Lines, so each message is one line a script can read.
    func renderStreamed(_ value: JSONValue) -> String {
        switch self {
        case .json: value.serialized()
        case .table: TableRenderer.render(value)
        }
    }
}

enum TableRenderer {
    static func render(_ value: JSONValue) -> String {
        guard case .object(let members) = value else { return cell(value) }
        // A list response (`{agents: [...], nextPageToken}`): its one array of objects is the table.
        let lists = members.filter { if case .array(let items) = $0.1, items.allSatisfy(isObject) { true } else { false } }
        if lists.count == 1, case .array(let items) = lists[0].1 {
            var out = rows(items)
            for (key, other) in members where key != lists[0].0 { out += "\n\(printable(key)): \(cell(other))" }
            return out
        }
        return grid([["FIELD", "VALUE"]] + flattened(members).map { [$0.0, cell($0.1)] })
    }

    /// Nested objects as dotted keys (`item.content`), so a table shows fields, not JSON. Keys are
    /// shown like values: a metadata key is text an agent wrote.
    static func flattened(_ members: [(String, JSONValue)], prefix: String = "") -> [(String, JSONValue)] {
        members.flatMap { key, value -> [(String, JSONValue)] in
            let key = printable(key)
            if case .object(let nested) = value, !nested.isEmpty { return flattened(nested, prefix: prefix + key + ".") }
            return [(prefix + key, value)]
        }
    }

    /// One row per object, one column per key any of them has (in first-seen order).
    static func rows(_ items: [JSONValue]) -> String {
        guard !items.isEmpty else { return "(none)" }
        let flat = items.map { item -> [(String, JSONValue)] in
            if case .object(let members) = item { return flattened(members) }
            return [("value", item)]
        }
        var columns: [String] = []
        for members in flat {
            for (key, _) in members where !columns.contains(key) { columns.append(key) }
        }
        let body = flat.map { members in
            columns.map { column in members.first { $0.0 == column }.map { cell($0.1) } ?? "" }
        }
        return grid([columns.map(header)] + body)
    }

    /// `clusterId` → `CLUSTER_ID`, `item.authorAgentId` → `ITEM.AUTHOR_AGENT_ID`.
    static func header(_ jsonName: String) -> String {
        var out = ""
        for ch in jsonName {
            if ch.isUppercase, !out.isEmpty, out.last != "." { out += "_" }
            out += ch.uppercased()
        }
        return out
    }

    static func grid(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
                .replacingTrailingSpaces()
        }.joined(separator: "\n")
    }

    /// A value as one cell: scalars as themselves, anything nested as compact JSON. Control
    /// characters are shown, not sent: text written by any agent must not move the cursor,
    /// retitle the terminal or split a tab-separated `--field` line.
    static func cell(_ value: JSONValue) -> String {
        switch value {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): printable(s)
        case .array, .object: value.serialized()
        }
    }

    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: JSONValue.isControl) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar == "\n" {
                out += "⏎"
            } else if JSONValue.isControl(scalar) {
                out += JSONValue.unicodeEscape(scalar)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func isObject(_ value: JSONValue) -> Bool {
        if case .object = value { true } else { false }
    }
}

extension String {
    fileprivate func replacingTrailingSpaces() -> String {
        var s = self
        while s.last == " " { s.removeLast() }
        return s
    }
}
