import CPlatosProto
import Foundation
import PlatosProto
import ProtobufCSwift
import Testing

/// Swift → protobuf-c → bytes → Swift for every message type of proto/, enumerated from the
/// descriptor table: a message added to proto/ is covered without touching this file.
@Suite struct BinaryRoundTripTests {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    @Test func everyDescriptorHasASwiftType() {
        let swiftNames = Set(V1.allMessageTypes.map { $0.protoDescriptor.fullName })
        // Map entries (`platos.v1.Outer.XxxEntry`) are folded into `[String: String]` fields.
        let cNames = Set(DescriptorTable.messages.keys.filter { $0.split(separator: ".").count == 3 })
        #expect(swiftNames == cNames)
        #expect(swiftNames.count == V1.allMessageTypes.count)
        #expect(swiftNames.count >= 80)
    }

    @Test(arguments: V1.allMessageTypes.map(MessageType.init))
    func roundTripsWithLargeBytes(_ type: MessageType) throws {
        try type.check(bytes: .large)
    }

    @Test(arguments: V1.allMessageTypes.map(MessageType.init))
    func roundTripsWithEmptyBytes(_ type: MessageType) throws {
        try type.check(bytes: .empty)
    }

    /// The bytes are protobuf, not something only protobuf-c reads: protoc decodes them to text,
    /// encodes that text again, and the result decodes to the same Swift value.
    @Test(arguments: V1.allMessageTypes.map(MessageType.init))
    func protocAcceptsTheBytes(_ type: MessageType) throws {
        try type.checkWithProtoc(repoRoot: Self.repoRoot)
    }

    @Test func defaultValuesRoundTripToZeroBytes() throws {
        for type in V1.allMessageTypes {
            let bytes = try type.init().serializedBytes()
            #expect(bytes.isEmpty, "\(type) default encodes to \(bytes.count) bytes")
        }
    }

    @Test func unknownEnumValuesSurvive() throws {
        let frame = V1.Frame(callId: 7, kind: .unrecognized(99))
        let decoded = try V1.Frame(serializedBytes: frame.serializedBytes())
        #expect(decoded.kind == .unrecognized(99))
        #expect(decoded.kind.protoValue == 99)
    }

    @Test func sizeLimitIsCheckedBeforeUnpacking() throws {
        let item = V1.MemoryItem(content: String(repeating: "x", count: 2000))
        let bytes = try item.serializedBytes()
        #expect(throws: ProtoError.tooLarge(size: bytes.count, limit: 1024)) {
            try V1.MemoryItem(serializedBytes: bytes, maxSize: 1024)
        }
        #expect(try V1.MemoryItem(serializedBytes: bytes, maxSize: bytes.count) == item)
    }

    @Test func garbageIsAnErrorNotACrash() throws {
        let garbage: [[UInt8]] = [
            [0xFF], [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0x12, 0x05, 0x61], Array(repeating: 0xFF, count: 64),
            [0x3A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
        ]
        for bytes in garbage {
            #expect(throws: ProtoError.malformed(message: "platos.v1.Frame")) {
                try V1.Frame(serializedBytes: bytes)
            }
        }
    }

    @Test func aStringWithNULIsRejectedOnEncode() {
        #expect(throws: ProtoError.invalidValue("platos.v1.Status.message contains a NUL character, which protobuf-c cannot carry")) {
            try V1.Status(message: "a\u{0}b").serializedBytes()
        }
        #expect(throws: ProtoError.invalidValue("platos.v1.WriteMemoryRequest.tags contains a NUL character, which protobuf-c cannot carry")) {
            try V1.WriteMemoryRequest(tags: ["ok", "a\u{0}"]).serializedBytes()
        }
    }

    /// protobuf-c checks neither NULs nor UTF-8 in strings; a peer's "a\0bcd" used to be read as
    /// "a", and invalid UTF-8 as U+FFFD. Both are refused now, naming the problem.
    @Test func aStringWithNULOrInvalidUTF8IsRejectedOnDecode() throws {
        // Frame.method (field 3) = "a\0bcd"; then = 0xC3 0x28.
        #expect(throws: ProtoError.invalidValue("platos.v1.Frame.method contains a NUL character")) {
            try V1.Frame(serializedBytes: [0x1A, 0x05, 0x61, 0x00, 0x62, 0x63, 0x64])
        }
        #expect(throws: ProtoError.invalidValue("platos.v1.Frame.method is not valid UTF-8")) {
            try V1.Frame(serializedBytes: [0x1A, 0x02, 0xC3, 0x28])
        }
        // In a repeated string and in a map key too (WriteMemoryRequest.tags = 2, metadata = 3).
        #expect(throws: ProtoError.self) { try V1.WriteMemoryRequest(serializedBytes: [0x12, 0x02, 0x61, 0x00]) }
        #expect(throws: ProtoError.self) {
            try V1.WriteMemoryRequest(serializedBytes: [0x1A, 0x05, 0x0A, 0x01, 0xFF, 0x12, 0x00])
        }
        // Valid UTF-8 of every length still reads back unchanged.
        let status = V1.Status(message: "é ✓ 𝄞 plain")
        #expect(try V1.Status(serializedBytes: try status.serializedBytes()) == status)
    }

    /// A non-repeated message field sent again and again makes protobuf-c merge the copies,
    /// concatenating their repeated fields into a fresh array each time: memory quadratic in the
    /// input (1.6 GB for these 80 KB, never freed until the unpack ends). The unpack budget
    /// refuses it as malformed instead.
    @Test func inputBuiltToMakeProtobufCAllocateWithoutLimitIsMalformed() throws {
        // Frame.status (field 7) = Status { details: [{}] }, 20,000 times.
        let bytes = Array([[UInt8]](repeating: [0x3A, 0x02, 0x1A, 0x00], count: 20_000).joined())
        // Not #expect(throws:): when it fails, it would print the whole unpacked value.
        var refused: ProtoError?
        do { _ = try V1.Frame(serializedBytes: bytes) } catch { refused = error as? ProtoError }
        #expect(refused == .malformed(message: "platos.v1.Frame"))
        // A real message with thousands of small parts is well inside the budget.
        let many = V1.Frame(callId: 1, metadata: (0..<5_000).map { V1.MetadataEntry(key: "k\($0)", value: "v") })
        #expect(try V1.Frame(serializedBytes: try many.serializedBytes()) == many)
    }

    /// protobuf-c keeps every unknown field: a record, a copy of its bytes and a block for each.
    /// A frame of 4 MiB made of two-byte empty ones would take some 240 MiB to unpack; it is
    /// refused. A frame as large made of one real payload still decodes.
    @Test func aFrameOfMillionsOfUnknownFieldsIsMalformed() throws {
        // Field 15, varint 0, over and over.
        var bytes = [UInt8](repeating: 0, count: 4 << 20)
        bytes.withUnsafeMutableBufferPointer { buffer in
            for i in stride(from: 0, to: buffer.count, by: 2) { buffer[i] = 0x78 }
        }
        var refused: ProtoError?
        do { _ = try V1.Frame(serializedBytes: bytes) } catch { refused = error as? ProtoError }
        #expect(refused == .malformed(message: "platos.v1.Frame"))
        let large = V1.Frame(callId: 1, kind: .request, method: "memory.write", payload: [UInt8](repeating: 7, count: 4_000_000))
        #expect(try V1.Frame(serializedBytes: try large.serializedBytes()).payload.count == 4_000_000)
    }
}

/// A message type as a test argument, named by its proto name in the test report.
struct MessageType: CustomTestStringConvertible, Sendable {
    let type: any ProtoMessage.Type
    var testDescription: String { type.protoDescriptor.fullName }

    func check(bytes: ProtoSampleDecoder.BytesShape) throws {
        try Self.checkRoundTrip(self.type, bytes: bytes)
    }

    private static func checkRoundTrip<M: ProtoMessage>(_ type: M.Type, bytes: ProtoSampleDecoder.BytesShape) throws {
        let sample = try ProtoSampleDecoder.sample(M.self, bytes: bytes)
        #expect(sample != M(), "the sample of \(M.protoDescriptor.fullName) has only default values")
        let encoded = try sample.serializedBytes()
        let decoded = try M(serializedBytes: encoded)
        #expect(decoded == sample)
        // Encoding is deterministic for the same value (maps aside, whose order is free), and the
        // zero-copy path writes the same bytes.
        var viaSink: [UInt8] = []
        try decoded.serialize { size, pack in
            viaSink = [UInt8](unsafeUninitializedCapacity: size) { $1 = pack($0.baseAddress!) }
        }
        #expect(try M(serializedBytes: viaSink) == sample)
    }

    func checkWithProtoc(repoRoot: URL) throws {
        try Self.checkProtocAccepts(self.type, repoRoot: repoRoot)
    }

    private static func checkProtocAccepts<M: ProtoMessage>(_ type: M.Type, repoRoot: URL) throws {
        let sample = try ProtoSampleDecoder.sample(M.self, bytes: .empty)
        let name = M.protoDescriptor.fullName
        let text = try protoc(["--decode=\(name)"], input: Data(try sample.serializedBytes()), repoRoot: repoRoot)
        #expect(!text.isEmpty)
        let reencoded = try protoc(["--encode=\(name)"], input: text, repoRoot: repoRoot)
        #expect(try M(serializedBytes: [UInt8](reencoded)) == sample)
    }

    private static func protoc(_ args: [String], input: Data, repoRoot: URL) throws -> Data {
        let protoDir = repoRoot.appendingPathComponent("proto")
        let files = try FileManager.default.contentsOfDirectory(atPath: protoDir.appendingPathComponent("platos/v1").path)
            .filter { $0.hasSuffix(".proto") }.sorted().map { "platos/v1/\($0)" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["protoc", "-I", protoDir.path] + args + files
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Write and read concurrently so a large message cannot deadlock on a full pipe.
        let writer = Thread {
            stdin.fileHandleForWriting.write(input)
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "protoc \(args): \(String(decoding: errors, as: UTF8.self))")
        return output
    }
}
