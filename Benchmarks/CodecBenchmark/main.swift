// platos-bench-codec: the Swift ↔ protobuf-c bridge against raw protobuf-c from C.
//
// Each figure is a full round trip: Swift value → protobuf-c struct → packed bytes → unpacked
// struct → Swift value, against C struct → pack → unpack → free_unpacked. Run with
// `make bench-codec` (release build). Prints one `RESULT <name> <value>` line per headline figure.
import CRawProtobufBench
import Foundation
import PlatosProto
import ProtobufCSwift

let smallContent = "Prefers window seats and vegetarian meals on long-haul flights."  // about 60 bytes
let largeContent = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 92).prefix(4096)

func request(_ content: String) -> V1.WriteMemoryRequest {
    V1.WriteMemoryRequest(
        content: content, tags: ["preference", "travel", "profile"], metadata: ["source": "chat", "lang": "en"])
}

/// Round trips per second over `duration`, the best of `runs` runs.
func rate(runs: Int = 5, duration: Double = 0.6, _ body: (Int) -> UInt64) -> Double {
    var best = 0.0
    var sink: UInt64 = 0
    for _ in 0..<runs {
        var iterations = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < duration {
            sink &+= body(2000)
            iterations += 2000
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        best = max(best, Double(iterations) / elapsed)
    }
    if sink == 42 { print("") }  // keeps the work observable
    return best
}

func swiftRoundTrips(_ value: V1.WriteMemoryRequest) -> (Int) -> UInt64 {
    // A plain buffer, like the C side's malloc'ed one (a captured Swift array would add
    // exclusivity and uniqueness checks that have nothing to do with the codec).
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    let bytes = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
    return { iterations in
        var checksum: UInt64 = 0
        for _ in 0..<iterations {
            var size = 0
            try! value.serialize { n, pack in
                size = pack(bytes)
                precondition(size == n)
            }
            let back = try! V1.WriteMemoryRequest(serializedBytes: UnsafeRawBufferPointer(start: bytes, count: size))
            checksum &+= UInt64(size + back.content.utf8.count + back.tags.count + back.metadata.count)
        }
        return checksum
    }
}

func cRoundTrips(_ content: String) -> (Int) -> UInt64 {
    { iterations in content.withCString { platos_raw_write_request_round_trips($0, iterations) } }
}

/// The ratio for one message shape: the median over paired rounds, each round timing the Swift
/// side and then the C side back to back, so both see the same machine state (the C side's
/// malloc-bound unpack drifts by ±30 % between rounds on a shared 2-core machine).
func measure(_ name: String, content: String) -> Double {
    let value = request(content)
    let encodedSize = try! value.serializedBytes().count
    let swift = swiftRoundTrips(value)
    let c = cRoundTrips(content)
    var rounds: [(swift: Double, c: Double)] = []
    for _ in 0..<7 {
        rounds.append((rate(runs: 1, duration: 0.4, swift), rate(runs: 1, duration: 0.4, c)))
    }
    let ratios = rounds.map { $0.swift / $0.c }.sorted()
    let median = ratios[ratios.count / 2]
    let swiftRate = rounds.map(\.swift).sorted()[rounds.count / 2]
    let cRate = rounds.map(\.c).sorted()[rounds.count / 2]
    print(
        String(
            format: "%-6@ %5d B encoded  swift %10.0f round trips/s (%6.0f ns)  raw C %10.0f/s (%6.0f ns)  ratio %.2f (rounds %.2f–%.2f)",
            name, encodedSize, swiftRate, 1e9 / swiftRate, cRate, 1e9 / cRate, median, ratios.first!, ratios.last!))
    return median
}

// `--profile-swift` runs only the Swift side, for `perf record` / callgrind.
if CommandLine.arguments.contains("--profile-swift") {
    print(rate(runs: 3, duration: 1, swiftRoundTrips(request(smallContent))))
    exit(0)
}

print("Swift ↔ protobuf-c round trip vs raw protobuf-c (WriteMemoryRequest, 3 tags, 2 metadata pairs)")
let small = measure("small", content: smallContent)
let large = measure("4k", content: String(largeContent))
print("RESULT codec_small_vs_raw \(String(format: "%.2f", small))")
print("RESULT codec_4k_vs_raw \(String(format: "%.2f", large))")
