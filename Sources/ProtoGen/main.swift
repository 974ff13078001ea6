// platos-protogen: writes the Swift value types and the method table for proto/platos/v1 from
// protoc-c's own descriptors (field names, numbers, types, labels), so the Swift side can never
// drift from the C side. Run by scripts/generate-proto.sh (`make proto`), never by hand.
import CPlatosProto
import Foundation

struct Options {
    var protoDir = "proto/platos/v1"
    var outDir = "Sources/PlatosProto/Generated"

    init(arguments: [String]) {
        var it = arguments.dropFirst().makeIterator()
        while let arg = it.next() {
            switch arg {
            case "--proto-dir": protoDir = it.next() ?? protoDir
            case "--out": outDir = it.next() ?? outDir
            default: fail("unknown argument \(arg); usage: platos-protogen --proto-dir DIR --out DIR")
            }
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("platos-protogen: \(message)\n".utf8))
    exit(1)
}

let options = Options(arguments: CommandLine.arguments)
let protoFiles = (try? FileManager.default.contentsOfDirectory(atPath: options.protoDir))?
    .filter { $0.hasSuffix(".proto") }.sorted() ?? []
guard !protoFiles.isEmpty else { fail("no .proto files in \(options.protoDir)") }
let outlines = protoFiles.map { file in
    do { return try ProtoFileOutline(path: "\(options.protoDir)/\(file)") } catch { fail("\(file): \(error)") }
}

let model = DescriptorModel()
var written: Set<String> = []
for outline in outlines {
    let source = SwiftEmitter(model: model).file(for: outline)
    let path = "\(options.outDir)/\(outline.name).pb.swift"
    try! source.write(toFile: path, atomically: true, encoding: .utf8)
    written.insert(path)
    for type in outline.topLevelTypes { model.placed.insert("\(outline.package).\(type)") }
}
let methodTable = SwiftEmitter(model: model).methodTable(outlines)
try! methodTable.write(toFile: "\(options.outDir)/Catalog.pb.swift", atomically: true, encoding: .utf8)
written.insert("\(options.outDir)/Catalog.pb.swift")

// Every descriptor protoc-c produced must have landed in some Swift file.
let unplaced = model.messages.keys.filter { !model.placed.contains($0) && !model.isMapEntry($0) }
    + model.enums.keys.filter { !model.placed.contains($0) }
if !unplaced.isEmpty { fail("types not declared at top level of any file: \(unplaced.sorted())") }

// Remove stale outputs of proto files that no longer exist.
for old in (try? FileManager.default.contentsOfDirectory(atPath: options.outDir)) ?? []
where old.hasSuffix(".pb.swift") && !written.contains("\(options.outDir)/\(old)") {
    try? FileManager.default.removeItem(atPath: "\(options.outDir)/\(old)")
}
