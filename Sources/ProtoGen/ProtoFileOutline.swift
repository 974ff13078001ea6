import Foundation

/// What `platos-protogen` needs from the .proto text that protoc-c's descriptors do not carry:
/// which file declares each type (to lay out the Swift files), and the rpc's streaming flag and
/// `// platos:` annotations.
struct ProtoFileOutline {
    struct RPC {
        let name: String
        let requestType: String
        let responseType: String
        let serverStreaming: Bool
        let flags: Set<String>
    }

    struct Service {
        let name: String
        let rpcs: [RPC]
    }

    /// The file's name without `.proto`, for example `memory`.
    let name: String
    let package: String
    /// Top-level messages and enums, in declaration order.
    let topLevelTypes: [String]
    let services: [Service]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        package = Self.firstMatch(#"(?m)^package\s+([\w.]+)\s*;"#, in: text).first ?? ""
        topLevelTypes = Self.allMatches(#"(?m)^(?:message|enum)\s+(\w+)"#, in: text).map { $0[0] }
        var services: [Service] = []
        for block in Self.allMatches(#"(?ms)^service\s+(\w+)\s*\{(.*?)^\}"#, in: text) {
            let rpcs = Self.allMatches(
                #"rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*;[ \t]*(?://\s*platos:([^\n]*))?"#,
                in: block[1]
            ).map { m in
                RPC(
                    name: m[0], requestType: m[2], responseType: m[4], serverStreaming: !m[3].isEmpty,
                    flags: Set(m[5].split(separator: " ").map(String.init)))
            }
            services.append(Service(name: block[0], rpcs: rpcs))
        }
        self.services = services
    }

    private static func allMatches(_ pattern: String, in text: String) -> [[String]] {
        let regex = try! NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { match in
            (1..<match.numberOfRanges).map { i in
                let r = match.range(at: i)
                return r.location == NSNotFound ? "" : ns.substring(with: r)
            }
        }
    }

    private static func firstMatch(_ pattern: String, in text: String) -> [String] {
        allMatches(pattern, in: text).first ?? []
    }
}
