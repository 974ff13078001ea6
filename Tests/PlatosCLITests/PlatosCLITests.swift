import PlatosProto
import PlatosRPC
import ProtobufCSwift
import Testing

@testable import PlatosCLI

@Suite struct MethodCatalogTests {
    @Test func everyRoutedMethodIsCallableAndNoInternalOneIs() {
        let names = Set(MethodCatalog.callable.map(\.name))
        for method in V1.allMethods {
            #expect(names.contains(method.name) == (method.access != .internal), "\(method.name)")
        }
    }

    @Test func aTypoNamesTheClosestMethodsAndListsThemAll() throws {
        do {
            _ = try MethodCatalog.method(named: "memory.recal")
            Issue.record("a misspelt method was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("UNIMPLEMENTED"))
            #expect(text.contains("Did you mean memory.recall"))
            #expect(text.contains("threads.create"))
        }
    }

    @Test func describeShowsJSONNamesTypesAndEnumValues() throws {
        let text = MethodCatalog.describe(try MethodCatalog.method(named: "memory.write"))
        #expect(text.contains("request platos.v1.WriteMemoryRequest"))
        #expect(text.contains("expiresAtUnixMs: int64 (string)"))
        #expect(text.contains("metadata: map<string, string>"))
        #expect(text.contains("VISIBILITY_PRIVATE"))
        // Every method can be described (nested and recursive types included).
        for method in MethodCatalog.callable { #expect(!MethodCatalog.describe(method).isEmpty) }
    }

    @Test func editDistance() {
        #expect(MethodCatalog.editDistance("tasks.spwn", "tasks.spawn") == 1)
        #expect(MethodCatalog.editDistance("", "abc") == 3)
        #expect(MethodCatalog.editDistance("same", "same") == 0)
    }
}

@Suite struct OutputTests {
    @Test func aListResponseBecomesOneRowPerItemWithNestedFieldsFlattened() throws {
        let response = try JSONValue(parsing: """
            {"agents": [{"id": "a1", "scope": {"org": "o"}, "clusterId": "c1"}, {"id": "a2", "scope": {"org": "o"}}],
             "nextPageToken": "t"}
            """)
        let lines = TableRenderer.render(response).split(separator: "\n").map(String.init)
        #expect(lines[0].split(separator: " ", omittingEmptySubsequences: true) == ["ID", "SCOPE.ORG", "CLUSTER_ID"])
        #expect(lines[1].split(separator: " ", omittingEmptySubsequences: true) == ["a1", "o", "c1"])
        #expect(lines[2].split(separator: " ", omittingEmptySubsequences: true) == ["a2", "o"])
        #expect(lines.last == "nextPageToken: t")
    }

    @Test func anyOtherMessageIsOneRowPerField() throws {
        let text = TableRenderer.render(try JSONValue(parsing: #"{"token": {"id": "t1"}, "secret": "s"}"#))
        #expect(text == "FIELD     VALUE\ntoken.id  t1\nsecret    s")
    }

    @Test func jsonIsProto3JSON() throws {
        let json = OutputFormat.json.render(try JSONValue(parsing: #"{"a": "1"}"#))
        #expect(try JSONValue(parsing: json) == JSONValue(parsing: #"{"a": "1"}"#))
    }
}

/// What the CLI does with input a person or a server got wrong.
@Suite struct CLIInputTests {
    @Test func aTimeoutThatIsNotAUsableNumberOfSecondsIsAUsageError() throws {
        for bad in ["nan", "inf", "-1", "0", "1e16"] {
            #expect(throws: (any Error).self, "\(bad)") { _ = try CallCommand.parse(["health.check", "{}", "--timeout", bad]) }
        }
        _ = try CallCommand.parse(["health.check", "{}", "--timeout", "2.5"])
    }

    @Test func aFieldPathIsCheckedAgainstTheResponseBeforeTheCall() throws {
        let claim = V1.TasksService.claim.descriptor
        try CallCommand.parse(["tasks.claim", "{}", "--field", "task.leaseId", "--field", "task.attempts"]).gateway
            .checkFields(of: claim)
        let typo = try CallCommand.parse(["tasks.claim", "{}", "--field", "task.leaseid"]).gateway
        #expect {
            try typo.checkFields(of: claim)
        } throws: { error in
            "\(error)".contains("has no field 'leaseid'") && "\(error)".contains("leaseId")
        }
        let tooDeep = try CallCommand.parse(["tasks.claim", "{}", "--field", "task.id.more"]).gateway
        #expect(throws: (any Error).self) { try tooDeep.checkFields(of: claim) }
        // Proto names are not what the output holds: refused, with the JSON name to use.
        let snake = try CallCommand.parse(["tasks.claim", "{}", "--field", "task.lease_id"]).gateway
        #expect {
            try snake.checkFields(of: claim)
        } throws: { error in
            "\(error)".contains("write it as 'leaseId'")
        }
        // A map's keys are data: anything after the map's name passes.
        try CallCommand.parse(["agents.get", "{}", "--field", "metadata.team"]).gateway
            .checkFields(of: V1.AgentsService.get.descriptor)
    }

    /// `--field` renders the response with its default values: false and 0 print as such.
    @Test func fieldOutputShowsDefaultValues() throws {
        let method = V1.MemoryService.delete.descriptor
        let bytes = try V1.DeleteMemoryResponse().serializedBytes()
        let response = try MethodInvoker.decode(method, bytes, includeDefaults: true)
        #expect(response["deleted"].map(TableRenderer.cell) == "false")
        let garbage = #expect(throws: RPCError.self) { _ = try MethodInvoker.decode(method, [0xFF, 0xFF], includeDefaults: false) }
        #expect(garbage?.code == .internal)
    }

    @Test func controlCharactersInValuesAreShownNotSent() {
        let cell = TableRenderer.cell(.string("a\u{1B}]0;owned\u{07}b\tc\u{9B}d\ne"))
        #expect(cell == "a\\u001b]0;owned\\u0007b\\u0009c\\u009bd⏎e")
        #expect(TableRenderer.cell(.string("plain ünïcode")) == "plain ünïcode")
        // Keys too, and JSON output escapes DEL and C1 as well as C0.
        let table = TableRenderer.render(.object([("metadata", .object([("k\u{1B}[2J", .string("v"))]))]))
        #expect(!table.contains("\u{1B}"))
        #expect(!JSONValue.string("a\u{9B}b\u{7F}").serialized().unicodeScalars.contains { (0x7F...0x9F).contains($0.value) })
    }

    /// A status code outside gRPC's range is UNKNOWN (exit 2), never a number that wraps to exit 0.
    @Test func anUnknownStatusCodeIsUnknown() {
        let error = RPCError(status: V1.Status(code: .unrecognized(256), message: "odd"))
        #expect(error.code == .unknown)
        #expect(error.details["status-code"] == "256")
        #expect(RPCError(status: V1.Status(code: .notFound, message: "x")).code == .notFound)
    }
}
