import Foundation
import Testing

@testable import MemoryService

/// Tags and metadata columns: the JSON must round-trip any string and read what Foundation's
/// encoder wrote before (rows already on disk).
@Suite struct JSONColumnTests {
    static let awkward = [
        "", "plain", "quote \" and backslash \\", "slash / and \\/", "line\nbreak\ttab\r", "bell \u{07} nul \u{00}",
        "Grüße, 東京, emoji 😀", "\u{1F}\u{7F}", "{\"not\": [\"json\"]}",
    ]

    @Test func stringsRoundTrip() {
        #expect(JSONColumn.strings(JSONColumn.encode(Self.awkward)) == Self.awkward)
        #expect(JSONColumn.strings(JSONColumn.encode([])) == [])
    }

    @Test func dictionaryRoundTripsWithSortedKeys() {
        let map = Dictionary(uniqueKeysWithValues: Self.awkward.enumerated().map { ("k\($0.offset)\($0.element)", $0.element) })
        #expect(JSONColumn.dictionary(JSONColumn.encode(map)) == map)
        #expect(JSONColumn.encode(["b": "2", "a": "1"]) == #"{"a":"1","b":"2"}"#)
        #expect(JSONColumn.dictionary("{}") == [:])
    }

    @Test func readsWhatFoundationWrote() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let strings = String(decoding: try encoder.encode(Self.awkward), as: UTF8.self)
        #expect(JSONColumn.strings(strings) == Self.awkward)
        let map = ["emoji": "😀", "path": "a/b", "ctl": "\u{01}"]
        #expect(JSONColumn.dictionary(String(decoding: try encoder.encode(map), as: UTF8.self)) == map)
        // Escaped surrogate pairs, as other JSON writers produce.
        #expect(JSONColumn.strings(#"["\ud83d\ude00 \u00e9"]"#) == ["😀 é"])
    }

    @Test func foundationReadsWhatItWrites() throws {
        let text = JSONColumn.encode(Self.awkward)
        #expect(try JSONDecoder().decode([String].self, from: Data(text.utf8)) == Self.awkward)
    }

    /// No writer of these columns makes one (Swift strings cannot hold a lone surrogate); text
    /// edited by hand that has one is malformed like any other.
    @Test func aLoneSurrogateIsMalformed() {
        #expect(JSONColumn.strings(#"["\uD800"]"#) == [])
    }

    @Test func malformedTextIsEmptyNotACrash() {
        for text in ["", "[", "[\"a\"", "[\"a\",]", "{\"a\"}", "{\"a\":1}", "[1]", "\"a\"", "[\"\\x\"]"] {
            #expect(JSONColumn.strings(text) == [])
            #expect(JSONColumn.dictionary(text) == [:])
        }
    }
}
