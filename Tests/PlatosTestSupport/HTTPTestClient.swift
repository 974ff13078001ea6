import Foundation
import NIOCore
import NIOPosix

/// What an HTTP/1.1 server answered.
public struct HTTPTestResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: String

    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
}

/// A raw HTTP client for tests: writes bytes to a TCP port and reads until the server closes.
public enum HTTPTestClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// `method path` with `Connection: close`, so the answer ends when the server closes.
    public static func request(_ path: String, method: String = "GET", port: Int, host: String = "127.0.0.1")
        async throws -> HTTPTestResponse
    {
        let raw = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n"
        return try parse(try await exchange(Array(raw.utf8), port: port, host: host))
    }

    /// Sends `bytes`, returns everything received until the server closes the connection.
    /// The deadline only guards against a hang; no test depends on how fast the answer is.
    public static func exchange(
        _ bytes: [UInt8], port: Int, host: String = "127.0.0.1", deadline: Duration = .seconds(30)
    ) async throws -> [UInt8] {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(ByteBuffer(bytes: bytes))
                    var received: [UInt8] = []
                    do {
                        for try await var chunk in inbound {
                            received += chunk.readBytes(length: chunk.readableBytes) ?? []
                        }
                    } catch where !received.isEmpty {
                        // A reset after the answer (the server closed with our bytes unread).
                    }
                    return received
                }
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let received = first else {
                throw Failure(description: "no answer from \(host):\(port) within \(deadline)")
            }
            return received
        }
    }

    public static func parse(_ bytes: [UInt8]) throws -> HTTPTestResponse {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "not an HTTP response: '\(text)'") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw Failure(description: "bad status line: \(lines[0])")
        }
        let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTPTestResponse(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
