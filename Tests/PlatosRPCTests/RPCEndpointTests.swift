import PlatosRPC
import Testing

@Suite struct RPCEndpointTests {
    @Test func parsesIPv4IPv6AndRejectsWhatCannotBeDialled() {
        #expect(RPCEndpoint("127.0.0.1:7400") == RPCEndpoint(host: "127.0.0.1", port: 7400))
        #expect(RPCEndpoint("[::1]:7400") == RPCEndpoint(host: "::1", port: 7400))
        #expect(RPCEndpoint("[::1]:7400")?.description == "[::1]:7400")
        #expect(RPCEndpoint("localhost") == nil)
        #expect(RPCEndpoint(":7400") == nil)
        #expect(RPCEndpoint("h:70000") == nil)
    }
}
