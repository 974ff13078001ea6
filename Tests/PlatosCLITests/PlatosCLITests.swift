import PlatosProto
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
