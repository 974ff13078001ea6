import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
@testable import PlatosService
import PlatosTestSupport
import Prometheus
import Testing

/// The admin HTTP server on its own, on port 0 with a registry of its own.
@Suite struct AdminHTTPServerTests {
    final class Fixture: Sendable {
        let registry = PrometheusCollectorRegistry()
        let serving = NIOLockedValueBox(true)
        let server: AdminHTTPServer
        let port: Int

        init() async throws {
            let serving = self.serving
            server = AdminHTTPServer(host: "127.0.0.1", port: 0, registry: registry, isServing: { serving.withLockedValue { $0 } })
            port = try await server.start().port!
        }
    }

    /// Runs `body` against a started server, then closes it.
    static func withServer(_ body: (Fixture) async throws -> Void) async throws {
        let fixture = try await Fixture()
        do {
            try await body(fixture)
        } catch {
            await fixture.server.close()
            throw error
        }
        await fixture.server.close()
    }

    @Test func metricsAreServedAsPrometheusText() async throws {
        try await Self.withServer { fixture in
            let counter = fixture.registry.makeCounter(
                descriptor: MetricNameDescriptor(metricName: "test_calls", unitName: "total", helpText: "Test calls."),
                labels: [("method", "memory.recall")])
            counter.increment(by: Int64(3))

            let response = try await HTTPTestClient.request("/metrics", port: fixture.port)
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.header("Content-Length") == "\(response.body.utf8.count)")
            let samples = try PrometheusText.parse(response.body)
            #expect(PrometheusText.values(samples, "test_calls_total", ["method": "memory.recall"]) == [3])
            #expect(response.body.contains("# TYPE test_calls_total counter"))
            #expect(response.body.contains("# HELP test_calls_total Test calls."))

            counter.increment()
            let again = try PrometheusText.parse(try await HTTPTestClient.request("/metrics?x=1", port: fixture.port).body)
            #expect(PrometheusText.values(again, "test_calls_total") == [4])

            let head = try await HTTPTestClient.request("/metrics", method: "HEAD", port: fixture.port)
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
        }
    }

    @Test func healthzFollowsTheServingState() async throws {
        try await Self.withServer { fixture in
            let up = try await HTTPTestClient.request("/healthz", port: fixture.port)
            #expect(up.status == 200)
            #expect(up.body == "ok\n")
            fixture.serving.withLockedValue { $0 = false }
            let draining = try await HTTPTestClient.request("/healthz", port: fixture.port)
            #expect(draining.status == 503)
            #expect(draining.body == "draining\n")
        }
    }

    @Test func otherRequestsGet404Or405() async throws {
        try await Self.withServer { fixture in
            #expect(try await HTTPTestClient.request("/", port: fixture.port).status == 404)
            #expect(try await HTTPTestClient.request("/metrics/x", port: fixture.port).status == 404)
            let post = try await HTTPTestClient.request("/metrics", method: "POST", port: fixture.port)
            #expect(post.status == 405)
            #expect(post.header("Allow") == "GET, HEAD")
            #expect(try await HTTPTestClient.request("/nothing", method: "DELETE", port: fixture.port).status == 404)
        }
    }

    @Test func keepAliveServesSeveralRequestsOnOneConnection() async throws {
        try await Self.withServer { fixture in
            let request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            let last = "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let bytes = try await HTTPTestClient.exchange(Array((request + request + last).utf8), port: fixture.port)
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(text)")
            #expect(text.contains("HTTP/1.1 404 Not Found"), "\(text)")
        }
    }

    @Test func garbageAndOversizedRequestsCloseTheConnectionNotTheServer() async throws {
        try await Self.withServer { fixture in
            let garbage = try await HTTPTestClient.exchange(Array("\u{1}\u{2}NOT HTTP AT ALL\r\n\r\n".utf8), port: fixture.port)
            #expect(try HTTPTestClient.parse(garbage).status == 400)

            let hugeHeader = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 64 * 1024))\r\n\r\n"
            // NIO answers a 4xx and closes; the close may reset the connection before the answer
            // is read (our bytes are still unread), so only an answer that arrived is checked.
            if let tooBig = try? await HTTPTestClient.exchange(Array(hugeHeader.utf8), port: fixture.port), !tooBig.isEmpty {
                #expect((400..<500).contains(try HTTPTestClient.parse(tooBig).status))
            }

            let body = String(repeating: "b", count: 64 * 1024)
            let withBody = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            let tooLong = try await HTTPTestClient.exchange(Array(withBody.utf8), port: fixture.port)
            #expect(try HTTPTestClient.parse(tooLong).status == 413)

            // The server still answers.
            #expect(try await HTTPTestClient.request("/healthz", port: fixture.port).status == 200)
        }
    }

    /// A client that pipelines requests and reads no answer: once its connection takes no more
    /// writes, nothing more is answered (or read), so its answers cannot pile up in memory.
    @Test func pipelinedRequestsWaitWhileTheConnectionTakesNoWrites() throws {
        let channel = EmbeddedChannel()
        try AdminHTTPServer.configure(channel, registry: PrometheusCollectorRegistry(), isServing: { true })
        func answers() throws -> Int {
            var text = ""
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: bytes) }
            return text.components(separatedBy: "HTTP/1.1 200 OK").count - 1
        }
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        try channel.writeInbound(ByteBuffer(string: String(repeating: "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", count: 100)))
        #expect(try answers() == 0)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(try answers() == 100)
        _ = try? channel.finish()
    }

    /// A client that drips a request a byte at a time, never idle for the idle timeout, is closed
    /// once the request has taken longer than the request read timeout.
    @Test func aRequestDrippedInSlowerThanTheReadTimeoutClosesTheConnection() throws {
        let channel = EmbeddedChannel()
        try AdminHTTPServer.configure(channel, registry: PrometheusCollectorRegistry(), isServing: { true })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        let step = TimeAmount.seconds(3)
        var sent = 0
        while channel.isActive, sent < request.count {
            try channel.writeInbound(ByteBuffer(bytes: [request[sent]]))
            sent += 1
            channel.embeddedEventLoop.advanceTime(by: step)
        }
        #expect(!channel.isActive)
        // Closed by the read deadline (10 s = 4 steps), long before the request was complete
        // and with no gap anywhere near the 30 s idle timeout.
        #expect(sent == 4)
        // Never answered (the decoder's 400 for the cut-off request goes to a closed channel).
        var written = ""
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: bytes) }
        #expect(!written.contains("200 OK"))
        _ = try? channel.finish()
    }

    /// The read deadline covers a request being read, not a connection between requests: one
    /// sent in pieces within it is answered, and the connection then stays open while idle.
    @Test func theReadDeadlineStopsOnceARequestIsRead() throws {
        let channel = EmbeddedChannel()
        try AdminHTTPServer.configure(channel, registry: PrometheusCollectorRegistry(), isServing: { true })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        func answer() throws -> String {
            var text = ""
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: bytes) }
            return text
        }
        for _ in 0..<3 {
            try channel.writeInbound(ByteBuffer(string: "GET /healthz HTTP/1.1\r\n"))
            channel.embeddedEventLoop.advanceTime(by: .seconds(6))
            try channel.writeInbound(ByteBuffer(string: "Host: x\r\n\r\n"))
            #expect(try answer().hasPrefix("HTTP/1.1 200 OK"))
            channel.embeddedEventLoop.advanceTime(by: .seconds(20))
            #expect(channel.isActive)
        }
        _ = try? channel.finish()
    }

    /// Connections beyond the limit are closed as they open; those within it are served.
    @Test func connectionsBeyondTheLimitAreClosed() async throws {
        let registry = PrometheusCollectorRegistry()
        let server = AdminHTTPServer(host: "127.0.0.1", port: 0, registry: registry, isServing: { true }, maxConnections: 2)
        let port = try await server.start().port!
        let held = try (0..<2).map { _ in try RawSocket(port: port) }
        // The first two are accepted before the third arrives: each answers a request.
        for socket in held {
            socket.send(Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let answer = await socket.read(untilBytes: { String(decoding: $0, as: UTF8.self).hasSuffix("ok\n") })
            #expect(String(decoding: answer.bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
        }
        let extra = try RawSocket(port: port)
        let (bytes, closed) = await extra.readToEOF()
        #expect(closed)
        #expect(bytes.isEmpty)
        withExtendedLifetime(held) {}
        await server.close()
    }

    @Test func closeStopsAccepting() async throws {
        let fixture = try await Fixture()
        await fixture.server.close()
        await #expect(throws: (any Error).self) {
            _ = try await HTTPTestClient.request("/healthz", port: fixture.port)
        }
    }
}
