import Logging
import PlatosAuth
import PlatosProto
import PlatosRPC

/// One backend's connection pool, with its answers put the way the gateway's callers should
/// see them: a backend that refuses the gateway's own principal stamp (the services do not
/// share one internal secret, or their clocks are more than the stamp's lifetime apart) has not
/// judged the caller's token. Passed on as UNAUTHENTICATED, that would tell a client to drop a
/// good token; it is INTERNAL instead, with a message for whoever runs the stack, and logged.
struct BackendTransport: RPCTransport {
    let pool: RPCConnectionPool
    /// The backend's executable, for messages: `platos-memory`.
    let name: String
    let logger: Logger

    func unary(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        do {
            return try await pool.unary(method: method, payload: payload, metadata: metadata, deadline: deadline)
        } catch let error as RPCError where error.isPrincipalRejection {
            throw translated(error, method)
        }
    }

    func serverStreaming(
        method: RPCMethodDescriptor, payload: [UInt8], metadata: Metadata, deadline: ContinuousClock.Instant?
    ) -> AsyncThrowingStream<[UInt8], any Error> {
        let stream = pool.serverStreaming(method: method, payload: payload, metadata: metadata, deadline: deadline)
        let iterator = IteratorBox(stream.makeAsyncIterator())
        return AsyncThrowingStream { [self] in
            do {
                return try await iterator.next()
            } catch let error as RPCError where error.isPrincipalRejection {
                throw translated(error, method)
            }
        }
    }

    private func translated(_ error: RPCError, _ method: RPCMethodDescriptor) -> RPCError {
        logger.error(
            "a backend refused the gateway's principal stamp: do all services read one internal secret, and do their clocks agree?",
            metadata: ["backend": "\(name)", "method": "\(method.name)", "error": "\(error.message)"])
        return RPCError(
            .internal,
            "\(name), or a service it called, refused a principal stamp (\(error.message)); the services' internal "
                + "secrets or clocks disagree, which whoever runs this deployment must fix")
    }
}
