// `make bench-memory`: recall latency and throughput at 10k and 1M memories, and acknowledged
// writes/s against a bare SQLite insert of the same rows. Every recall and write goes over TCP to
// the real `platos-memory` executable (127.0.0.1), signed as the gateway signs; only the corpus is
// bulk-loaded straight into SQLite, to keep the run short.
//
// Options: --small-scopes 100 --large-scopes 10000 --per-scope 100 --callers 64 --seconds 5
//          --warmup 1 --write-seconds 5 --dir <scratch directory>
import BenchmarkSupport
import Foundation
import GRDB
import MemoryService
import PlatosAuth
import PlatosProto
import PlatosRPC
import PlatosStorage

struct Options {
    var smallScopes = 100
    var largeScopes = 10_000
    var perScope = 100
    var callers = 64
    var seconds = 5.0
    var warmup = 1.0
    var writeSeconds = 5.0
    var dir = FileManager.default.temporaryDirectory.appendingPathComponent("platos-bench-memory").path

    init(_ arguments: [String]) throws {
        var it = arguments.makeIterator()
        while let flag = it.next() {
            guard let value = it.next() else { throw BenchmarkFailure("\(flag) needs a value") }
            switch flag {
            case "--small-scopes": smallScopes = Int(value) ?? smallScopes
            case "--large-scopes": largeScopes = Int(value) ?? largeScopes
            case "--per-scope": perScope = Int(value) ?? perScope
            case "--callers": callers = Int(value) ?? callers
            case "--seconds": seconds = Double(value) ?? seconds
            case "--warmup": warmup = Double(value) ?? warmup
            case "--write-seconds": writeSeconds = Double(value) ?? writeSeconds
            case "--dir": dir = value
            default: throw BenchmarkFailure("unknown option \(flag)")
            }
        }
    }
}

/// Runs `body` against the real `platos-memory` (built next to this benchmark) serving
/// `dataDir`, and stops the service afterwards, whether `body` succeeded or not.
func withMemoryService<T>(dataDir: String, _ body: (_ port: Int) async throws -> T) async throws -> T {
    let (service, port) = try await ChildProcess.startService("memory", dataDir: dataDir)
    do {
        let result = try await body(port)
        await service.stop()
        return result
    } catch {
        await service.stop()
        throw error
    }
}

func f(_ x: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", x) }

let secret = String(repeating: "b3", count: 32)
let signer = try PrincipalSigner(secret: Array(secret.utf8))
let nowMs = Int64(Date().timeIntervalSince1970 * 1000)

/// A fresh data directory holding the secret the service will read.
func freshDataDir(_ options: Options, _ name: String) throws -> String {
    let path = "\(options.dir)/\(name)"
    try? FileManager.default.removeItem(atPath: path)
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    try secret.write(toFile: "\(path)/internal.secret", atomically: true, encoding: .utf8)
    return path
}

/// Loads `scopes × perScope` memories into `dataDir/memory.sqlite`, preparing the next chunk
/// while the previous one is inserted.
func loadCorpus(_ options: Options, scopes: Int, dataDir: String) async throws {
    let store = try SQLiteMemoryStore.open(path: "\(dataDir)/memory.sqlite")
    let started = nowNanos()
    let chunkScopes = max(1, 20_000 / options.perScope)
    func chunk(_ first: Int) -> [NewMemory] {
        var rng = SplitMix64(seed: UInt64(first) &+ 1)
        var memories: [NewMemory] = []
        for scope in first..<min(first + chunkScopes, scopes) {
            for _ in 0..<options.perScope { memories.append(Corpus.memory(scope: scope, &rng, nowMs: nowMs)) }
        }
        return memories
    }
    var pending: Task<Void, any Error>?
    for first in stride(from: 0, to: scopes, by: chunkScopes) {
        let memories = chunk(first)
        try await pending?.value
        pending = Task { try await store.importMemories(memories) }
    }
    try await pending?.value
    // What an import ends with, and what the service's background merging converges to: the
    // full-text index in one segment (see SQLiteMemoryStore.optimizeIndex).
    let optimizeStarted = nowNanos()
    try await store.optimizeIndex()
    let optimizeSeconds = Double(nowNanos() - optimizeStarted) / 1e9
    let count = try await store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM memories") ?? 0 }
    let seconds = Double(nowNanos() - started) / 1e9
    say(
        "loaded \(count) memories in \(scopes) scopes in \(f(seconds, 1)) s (\(f(Double(count) / seconds, 0))/s), "
            + "index optimized in \(f(optimizeSeconds, 1)) s")
}

struct RecallFigures {
    var p50: Double
    var p99: Double
    var perSecond: Double
}

func measureRecall(_ options: Options, scopes: Int, label: String) async throws -> RecallFigures {
    let dataDir = try freshDataDir(options, "recall-\(label)")
    try await loadCorpus(options, scopes: scopes, dataDir: dataDir)
    let sample = try await withMemoryService(dataDir: dataDir) { port in
        var configuration = RPCClientConfiguration()
        configuration.connections = 4
        let caller = SigningCaller(
            pool: RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration), signer: signer)
        let found = try await caller.call(
            V1.MemoryService.recall, V1.RecallRequest(query: Corpus.vocabulary[0], limit: 10), as: Corpus.reader(0))
        guard !found.items.isEmpty else { throw BenchmarkFailure("a recall of the most common word found nothing") }
        return await runClosedLoop(workers: options.callers, warmup: options.warmup, seconds: options.seconds) {
            _, rng in
            let scope = Int(rng.next() % UInt64(scopes))
            _ = try await caller.call(
                V1.MemoryService.recall, V1.RecallRequest(query: Corpus.query(&rng), limit: 10),
                as: Corpus.reader(scope))
        }
    }
    let figures = RecallFigures(
        p50: sample.ms(50), p99: sample.ms(99), perSecond: Double(sample.calls) / options.seconds)
    say(
        "recall \(label) (\(scopes * options.perScope) memories, \(scopes) scopes, \(options.callers) callers): "
            + "\(sample.calls) recalls, \(f(figures.perSecond, 0))/s, p50 \(f(figures.p50, 3)) ms, "
            + "p99 \(f(figures.p99, 3)) ms, p99.9 \(f(sample.ms(99.9), 3)) ms, errors \(sample.errors)")
    return figures
}

/// Acknowledged writes/s through the service, then the same number of rows inserted into a bare
/// database in batches of the group-commit size, with nothing around SQLite.
func measureWrites(_ options: Options) async throws -> (service: Double, sqlite: Double) {
    let dataDir = try freshDataDir(options, "writes")
    let scopes = options.largeScopes
    let sample = try await withMemoryService(dataDir: dataDir) { port in
        var configuration = RPCClientConfiguration()
        configuration.connections = 4
        let caller = SigningCaller(
            pool: RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration), signer: signer)
        return await runClosedLoop(workers: options.callers, warmup: options.warmup, seconds: options.writeSeconds) {
            _, rng in
            let scope = Int(rng.next() % UInt64(scopes))
            _ = try await caller.call(
                V1.MemoryService.write,
                V1.WriteMemoryRequest(content: Corpus.sentence(&rng), tags: [Corpus.vocabulary[Int(rng.next() % 20)]]),
                as: Corpus.writer(scope))
        }
    }
    let servicePerSecond = Double(sample.calls) / options.writeSeconds
    say(
        "write via service (\(options.callers) writers): \(sample.calls) acknowledged, \(f(servicePerSecond, 0))/s, "
            + "p50 \(f(sample.ms(50), 3)) ms, p99 \(f(sample.ms(99), 3)) ms, errors \(sample.errors)")

    let bareDir = try freshDataDir(options, "writes-bare")
    let bare = try SQLiteMemoryStore.open(path: "\(bareDir)/memory.sqlite")
    var rng = SplitMix64(seed: 4242)
    let rows = (0..<max(Int(sample.calls), 10_000)).map { _ in
        SQLiteMemoryStore.prepareImport(
            Corpus.memory(scope: Int(rng.next() % UInt64(scopes)), &rng, nowMs: nowMs))
    }
    let started = nowNanos()
    for first in stride(from: 0, to: rows.count, by: GroupCommitWriter.maxBatch) {
        let batch = Array(rows[first..<min(first + GroupCommitWriter.maxBatch, rows.count)])
        try await bare.database.pool.write { db in try SQLiteMemoryStore.insert(batch, into: db) }
    }
    let sqlitePerSecond = Double(rows.count) / (Double(nowNanos() - started) / 1e9)
    say(
        "bare SQLite batched insert (\(GroupCommitWriter.maxBatch) rows a transaction): \(rows.count) rows, "
            + "\(f(sqlitePerSecond, 0))/s")
    return (servicePerSecond, sqlitePerSecond)
}

do {
    let options = try Options(Array(CommandLine.arguments.dropFirst()))
    try FileManager.default.createDirectory(atPath: options.dir, withIntermediateDirectories: true)
    let small = try await measureRecall(options, scopes: options.smallScopes, label: "small")
    let large = try await measureRecall(options, scopes: options.largeScopes, label: "large")
    let writes = try await measureWrites(options)
    try? FileManager.default.removeItem(atPath: options.dir)
    say("RESULT recall_flatness_1m_vs_10k \(f(large.p50 / small.p50, 3))")
    say("RESULT recall_p99_ms_1m \(f(large.p99, 3))")
    say("RESULT recalls_per_s_1m \(f(large.perSecond, 0))")
    say("RESULT writes_per_s \(f(writes.service, 0))")
    say("RESULT writes_vs_sqlite \(f(writes.service / writes.sqlite, 3))")
} catch {
    FileHandle.standardError.write(Data("platos-bench-memory: \(error)\n".utf8))
    exit(1)
}
