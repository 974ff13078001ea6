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

/// Round trips per second over `duration`, the best of `runs` runs (for `--profile-swift`).
func rate(runs: Int, duration: Double, _ body: (Int) -> UInt64) -> Double {
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

/// Nanoseconds per round trip of each side over one round: the two sides alternate in slices of
/// `slice` round trips (about a millisecond each), so both see the same machine. This 2-core VM's
/// speed drifts by up to 2× over seconds, which back-to-back runs of each side would read as a
/// difference between them.
func pairedRound(
    slices: Int = 150, slice: Int = 500, _ swift: (Int) -> UInt64, _ c: (Int) -> UInt64
) -> (swift: Double, c: Double) {
    var swiftNs: UInt64 = 0
    var cNs: UInt64 = 0
    var sink: UInt64 = 0
    for _ in 0..<slices {
        let t0 = DispatchTime.now().uptimeNanoseconds
        sink &+= swift(slice)
        let t1 = DispatchTime.now().uptimeNanoseconds
        sink &+= c(slice)
        let t2 = DispatchTime.now().uptimeNanoseconds
        swiftNs += t1 - t0
        cNs += t2 - t1
    }
    if sink == 42 { print("") }  // keeps the work observable
    let total = Double(slices * slice)
    return (Double(swiftNs) / total, Double(cNs) / total)
}

func swiftRoundTrips(_ value: V1.WriteMemoryRequest) -> (Int) -> UInt64 {
    // A plain buffer, like the C side's malloc'ed one (a captured Swift array would add
    // exclusivity and uniqueness checks that have nothing to do with the codec).
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 16)
    let bytes = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
    return { iterations in
        // A local, like the C side's stack struct: reading the closure's capture would copy the
        // message (three retains and releases) on every iteration.
        let message = value
        var checksum: UInt64 = 0
        for _ in 0..<iterations {
            var size = 0
            try! message.serialize { n, pack in
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

/// The ratio for one message shape (raw C time over Swift time, so higher is better): the median
/// of 7 paired rounds, after one warm-up round.
func measure(_ name: String, content: String) -> Double {
    let value = request(content)
    let encodedSize = try! value.serializedBytes().count
    let swift = swiftRoundTrips(value)
    let c = cRoundTrips(content)
    _ = pairedRound(swift, c)
    let rounds = (0..<7).map { _ in pairedRound(swift, c) }
    let ratios = rounds.map { $0.c / $0.swift }.sorted()
    let median = ratios[ratios.count / 2]
    let swiftNs = rounds.map(\.swift).sorted()[rounds.count / 2]
    let cNs = rounds.map(\.c).sorted()[rounds.count / 2]
    print(
        String(
            format: "%-6@ %5d B encoded  swift %6.0f ns/round trip  raw C %6.0f ns  ratio %.2f (rounds %.2f–%.2f)",
            name, encodedSize, swiftNs, cNs, median, ratios.first!, ratios.last!))
    return median
}

// `--profile-swift` runs only the Swift side for 3 s, for `perf record`. `--count-swift N` and
// `--count-c N` run exactly N small round trips of one side, for `valgrind --tool=callgrind`,
// whose instruction counts stay comparable when the machine's speed drifts.
if CommandLine.arguments.contains("--profile-swift") {
    print(rate(runs: 3, duration: 1, swiftRoundTrips(request(smallContent))))
    exit(0)
}
let countedSides = [("--count-swift", swiftRoundTrips(request(smallContent))), ("--count-c", cRoundTrips(smallContent))]
for (flag, side) in countedSides {
    if let i = CommandLine.arguments.firstIndex(of: flag), i + 1 < CommandLine.arguments.count,
        let count = Int(CommandLine.arguments[i + 1])
    {
        print(side(count))
        exit(0)
    }
}

print("Swift ↔ protobuf-c round trip vs raw protobuf-c (WriteMemoryRequest, 3 tags, 2 metadata pairs)")
let small = measure("small", content: smallContent)
let large = measure("4k", content: String(largeContent))
print("RESULT codec_small_vs_raw \(String(format: "%.2f", small))")
print("RESULT codec_4k_vs_raw \(String(format: "%.2f", large))")
