import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PlatosProto
import PlatosRPC
import ProtobufCSwift

/// Records what handlers observed, so tests can assert on server-side behaviour.
final class Observations: Sendable {
    private let state = NIOLockedValueBox([String: [String]]())

    func record(_ key: String, _ value: String = "") {
        state.withLockedValue { $0[key, default: []].append(value) }
    }

    func values(_ key: String) -> [String] { state.withLockedValue { $0[key] ?? [] } }
    func count(_ key: String) -> Int { values(key).count }

    /// Polls until `key` has `n` records or the deadline passes.
    func wait(for key: String, count n: Int = 1, within limit: Duration = .seconds(15)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if count(key) >= n { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return count(key) >= n
    }
}

/// Handlers on real method descriptors (the runtime does not care what a method means):
/// - `memory.get`: echoes `memory_id` into `MemoryItem.id` after a random pause of up to 20 ms.
/// - `memory.recall`: sleeps for `limit` ms, recording cancellation; with query "downstream" it
///   calls `memory.history` on `downstreamPort` and returns the budget that call saw.
/// - `memory.history`: records the remaining budget of its caller's deadline.
/// - `registry.watch`: streams `after_version` events numbered 1...n; throws after them when
///   asked to (`after_version` = 999).
/// - `tasks.watch`: streams forever until cancelled, recording when it stops.
/// - `memory.list`: after 300 ms, answers one memory of 3 MiB (an answer that takes a while to
///   write).
enum TestRouter {
    static func make(_ observations: Observations, downstream: @escaping @Sendable () -> RPCClient? = { nil })
        -> RPCRouter
    {
        var router = RPCRouter()
        router.register(V1.MemoryService.get) { request, _ in
            observations.record("get.started")
            try await Task.sleep(for: .microseconds(Int.random(in: 0...20_000)))
            return V1.MemoryItem(id: request.memoryId)
        }
        router.register(V1.MemoryService.recall) { request, context in
            observations.record("recall.started")
            if request.query == "downstream", let client = downstream() {
                let history = try await client.call(V1.MemoryService.history, V1.MemoryHistoryRequest(memoryId: "x"))
                return V1.RecallResponse(items: [V1.RecalledMemory(item: V1.MemoryItem(content: history.nextPageToken))])
            }
            do {
                try await Task.sleep(for: .milliseconds(Int(request.limit)))
            } catch {
                observations.record("recall.cancelled")
                throw error
            }
            observations.record("recall.finished")
            return V1.RecallResponse()
        }
        router.register(V1.MemoryService.history) { _, context in
            let remaining = context.remaining.map { "\($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)" } ?? "none"
            observations.record("history.remaining", remaining)
            return V1.MemoryHistoryResponse(nextPageToken: remaining)
        }
        router.register(V1.ThreadsService.get) { request, _ in
            // Ignores cancellation: stands for a handler inside work it cannot interrupt. Sleeps
            // `thread_id` milliseconds.
            let ms = Int(request.threadId) ?? 0
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) { done.resume() }
            }
            observations.record("threads.get.finished")
            return V1.Thread(id: request.threadId)
        }
        router.register(V1.RegistryService.watch) { request, _, writer in
            let n = request.afterVersion == 999 ? 10 : request.afterVersion
            for version in 1...max(1, n) {
                try await writer.send(V1.MembershipEvent(version: version))
            }
            if request.afterVersion == 999 { throw RPCError(.failedPrecondition, "the watch broke on purpose") }
        }
        router.register(V1.MemoryService.list) { _, _ in
            observations.record("list.started")
            try await Task.sleep(for: .milliseconds(300))
            return V1.ListMemoriesResponse(items: [V1.MemoryItem(content: String(repeating: "m", count: 3 << 20))])
        }
        router.register(V1.TasksService.watch) { _, _, writer in
            var i = 0
            do {
                while true {
                    i += 1
                    try await writer.send(V1.Task(id: "\(i)"))
                    try await Task.sleep(for: .milliseconds(1))
                }
            } catch {
                observations.record("tasks.watch.stopped", "\(i)")
                throw error
            }
        }
        return router
    }
}

/// A blocking TCP socket for speaking broken protocol at a server.
final class RawSocket {
    let fd: Int32

    /// `receiveBuffer` and `sendBuffer` (bytes) shrink the socket's kernel buffers, set before
    /// connecting so that the TCP window follows them.
    init(port: Int, receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        for (option, size) in [(SO_RCVBUF, receiveBuffer), (SO_SNDBUF, sendBuffer)] {
            guard var size else { continue }
            setsockopt(fd, SOL_SOCKET, option, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw RPCError(.unavailable, "connect failed: \(errno)") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends `chunk(0)`, `chunk(1)`, … `chunk(count - 1)` until a send has been blocked for a
    /// second, so sends less than its whole chunk (the peer stopped reading); returns how many
    /// bytes went out. Blocking sends run on a thread of their own, as reads do.
    func sendUntilBlocked(count: Int, _ chunk: @escaping @Sendable (Int) -> [UInt8]) async -> Int {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var timeout = timeval(tv_sec: 1, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var total = 0
                for i in 0..<count {
                    let bytes = chunk(i)
                    let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if n > 0 { total += n }
                    if n < bytes.count { break }
                }
                continuation.resume(returning: total)
            }.start()
        }
    }

    /// Reads until the peer closes (or 5 s pass). Returns the bytes and whether EOF was seen.
    /// Blocking reads run on a thread of their own: on the cooperative pool (two threads on
    /// this machine) they would stall every other test.
    func readToEOF() async -> (bytes: [UInt8], closed: Bool) {
        await read(until: { _ in false })
    }

    /// Reads until `done` holds for the frames received so far, the peer closes, or 5 s pass.
    func read(until done: @escaping @Sendable ([V1.Frame]) -> Bool) async -> (bytes: [UInt8], closed: Bool) {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var out: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        out += chunk[0..<n]
                        if done(RawSocket.frames(out)) { break }
                        continue
                    }
                    continuation.resume(returning: (out, n == 0 || errno == ECONNRESET))
                    return
                }
                continuation.resume(returning: (out, false))
            }.start()
        }
    }

    /// The frames in `bytes` (complete ones only).
    static func frames(_ bytes: [UInt8]) -> [V1.Frame] {
        var frames: [V1.Frame] = []
        var i = 0
        while i + 4 <= bytes.count {
            let n = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard i + 4 + n <= bytes.count, let f = try? V1.Frame(serializedBytes: Array(bytes[(i + 4)..<(i + 4 + n)])) else { break }
            frames.append(f)
            i += 4 + n
        }
        return frames
    }

    static func encode(_ frame: V1.Frame) -> [UInt8] {
        let body = try! frame.serializedBytes()
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
    }
}

/// Starts a server on a free port for one test.
func startServer(
    _ router: RPCRouter, configure: (inout RPCServerConfiguration) -> Void = { _ in }
) async throws -> (RPCServer, Int) {
    var configuration = RPCServerConfiguration(serverName: "test")
    configure(&configuration)
    let server = RPCServer(configuration: configuration, router: router)
    let address = try await server.start()
    return (server, address.port!)
}

func client(_ port: Int, configure: (inout RPCClientConfiguration) -> Void = { _ in }) -> (RPCClient, RPCConnectionPool) {
    var configuration = RPCClientConfiguration()
    configure(&configuration)
    let pool = RPCConnectionPool(host: "127.0.0.1", port: port, configuration: configuration)
    return (RPCClient(transport: pool), pool)
}
