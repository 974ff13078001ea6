import PlatosProto
import ProtobufCSwift
import Testing

@Suite struct JSONMappingTests {
    @Test(arguments: V1.allMessageTypes.map(MessageType.init))
    func everyMessageRoundTripsThroughJSON(_ type: MessageType) throws {
        try Self.roundTrip(type.type)
    }

    private static func roundTrip<M: ProtoMessage>(_ type: M.Type) throws {
        for shape in [ProtoSampleDecoder.BytesShape.empty, .large] {
            let sample = try ProtoSampleDecoder.sample(M.self, bytes: shape)
            let text = try sample.jsonString()
            #expect(try M(jsonString: text) == sample)
            let pretty = try sample.jsonString(pretty: true, includeDefaults: true)
            #expect(try M(jsonString: pretty) == sample)
        }
    }

    @Test func usesProto3JSONNames() throws {
        let request = V1.CreateClusterRequest(name: "Wally", slug: "wally", agentIds: ["a1", "a2"])
        #expect(try request.jsonString() == #"{"name":"Wally","slug":"wally","agentIds":["a1","a2"]}"#)
        // The proto name is accepted too.
        let parsed = try V1.CreateClusterRequest(jsonString: #"{"agent_ids":["a1","a2"],"name":"Wally","slug":"wally"}"#)
        #expect(parsed == request)
    }

    @Test func writesInt64AsStringsAndEnumsAsNames() throws {
        let item = V1.MemoryItem(ownerKind: .cluster, version: 3, createdAtUnixMs: 1_700_000_000_123)
        let json = try item.jsonValue()
        #expect(json["ownerKind"] == .string("OWNER_KIND_CLUSTER"))
        #expect(json["version"] == .string("3"))
        #expect(json["createdAtUnixMs"] == .string("1700000000123"))
        // Numbers are accepted for 64-bit fields and enums, too.
        let back = try V1.MemoryItem(jsonString: #"{"ownerKind":1,"version":3,"createdAtUnixMs":1700000000123}"#)
        #expect(back == item)
    }

    @Test func badJSONNamesTheField() throws {
        let cases: [(String, String)] = [
            (#"{"content": 5}"#, "content"),
            (#"{"tags": "not-a-list"}"#, "tags"),
            (#"{"tags": ["ok", 3]}"#, "tags[1]"),
            (#"{"visibility": "VISIBLE_TO_ALL"}"#, "visibility"),
            (#"{"expiresAtUnixMs": "soon"}"#, "expiresAtUnixMs"),
            (#"{"metadata": {"k": 1}}"#, "metadata.k"),
            (#"{"contnet": "typo"}"#, "contnet"),
        ]
        for (text, field) in cases {
            do {
                _ = try V1.WriteMemoryRequest(jsonString: text)
                Issue.record("\(text) was accepted")
            } catch let error as ProtoError {
                guard case .json(let path, let problem) = error else {
                    Issue.record("unexpected \(error)")
                    continue
                }
                #expect(path == field, "\(text): \(problem)")
                #expect(!problem.isEmpty)
            }
        }
    }

    @Test func nestedErrorsCarryThePath() throws {
        do {
            _ = try V1.LoadContextResponse(jsonString: #"{"memories":[{"item":{"tags":[true]}}]}"#)
            Issue.record("accepted")
        } catch let error as ProtoError {
            #expect(error == .json(path: "memories[0].item.tags[0]", problem: "expected a string, got a boolean"))
        }
    }

    /// What is not JSON, or would be silently changed on the way in, is refused rather than
    /// repaired: lone surrogates (not U+FFFD), numbers outside JSON's grammar, a field or a map
    /// key given twice (not "the last wins"), a double beyond range (not infinity), hex or "inf"
    /// for a double, and base64 with padding in the middle.
    @Test func inputThatWouldBeChangedOnTheWayInIsRefused() throws {
        for text in [#""\uD800""#, #""\uDC00x""#, "+1", "01", ".5", "1.", "-", "1e", "1.5e+"] {
            #expect(throws: ProtoError.self, "\(text)") { try JSONValue(parsing: text) }
        }
        for text in ["0", "-0", "12", "1.5", "-1.25e-3", "1E+2"] {
            #expect((try? JSONValue(parsing: text)) == .number(text), "\(text)")
        }
        #expect(throws: ProtoError.self) { try V1.Frame(jsonString: #"{"method":"a","method":"b"}"#) }
        #expect(throws: ProtoError.self) { try V1.Frame(jsonString: #"{"call_id":"1","callId":"2"}"#) }
        #expect(throws: ProtoError.self) { try V1.WriteMemoryRequest(jsonString: #"{"metadata":{"k":"a","k":"b"}}"#) }
        for score in ["1e400", #""0x10""#, #""inf""#, #""1e400""#] {
            #expect(throws: ProtoError.self, "\(score)") { try V1.RecalledMemory(jsonString: #"{"score":\#(score)}"#) }
        }
        #expect(try V1.RecalledMemory(jsonString: #"{"score":"-Infinity"}"#).score == -.infinity)
        #expect(try V1.RecalledMemory(jsonString: #"{"score":0.5}"#).score == 0.5)
        #expect(throws: ProtoError.self) { try V1.Frame(jsonString: #"{"payload":"QQ==QQ=="}"#) }
        #expect(try V1.Frame(jsonString: #"{"payload":"QUI="}"#).payload == [0x41, 0x42])
    }

    @Test func malformedJSONIsAnError() {
        for text in ["{", #"{"a" 1}"#, "[1,]", #"{"content": "x"} trailing"#, "nul", #""\u12""#, #"{"content": "\uD800\u0041"}"#, #"{"content": "\uD800\uE000"}"#] {
            #expect(throws: ProtoError.self, "\(text)") { try V1.WriteMemoryRequest(jsonString: text) }
        }
    }
}
