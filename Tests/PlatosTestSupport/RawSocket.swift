import Foundation
import PlatosProto

/// A connect that failed.
public struct RawSocketError: Error {
    public let errno: Int32
}

/// A blocking TCP socket for speaking broken protocol at a server.
public final class RawSocket {
    public let fd: Int32

    /// `receiveBuffer` and `sendBuffer` (bytes) shrink the socket's kernel buffers, set before
    /// connecting so that the TCP window follows them.
    public init(port: Int, receiveBuffer: Int32? = nil, sendBuffer: Int32? = nil) throws {
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
        guard rc == 0 else { throw RawSocketError(errno: errno) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends `chunk(0)`, `chunk(1)`, … `chunk(count - 1)` until a send has been blocked for a
    /// second, so sends less than its whole chunk (the peer stopped reading); returns how many
    /// bytes went out. Blocking sends run on a thread of their own, as reads do.
    public func sendUntilBlocked(count: Int, _ chunk: @escaping @Sendable (Int) -> [UInt8]) async -> Int {
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
    public func readToEOF() async -> (bytes: [UInt8], closed: Bool) {
        await read(until: { _ in false })
    }

    /// Reads until `done` holds for the frames received so far, the peer closes, or 5 s pass.
    public func read(until done: @escaping @Sendable ([V1.Frame]) -> Bool) async -> (bytes: [UInt8], closed: Bool) {
        await read(untilBytes: { done(RawSocket.frames($0)) })
    }

    /// Reads until `done` holds for the bytes received so far, the peer closes, or 5 s pass.
    public func read(untilBytes done: @escaping @Sendable ([UInt8]) -> Bool) async -> (bytes: [UInt8], closed: Bool) {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread {
                var out: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if n > 0 {
                        out += chunk[0..<n]
                        if done(out) { break }
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
    public static func frames(_ bytes: [UInt8]) -> [V1.Frame] {
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

    public static func encode(_ frame: V1.Frame) -> [UInt8] {
        let body = try! frame.serializedBytes()
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
    }
}

