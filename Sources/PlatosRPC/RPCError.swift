import PlatosProto

/// The one error type of every RPC: a gRPC status code and a message for the person who reads it.
///
/// Handlers throw it to answer with a non-OK status; clients receive it for any failed call.
/// Any other error a handler throws is answered as `INTERNAL` without its text, so internal
/// details never leak to a caller.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A gRPC status code, 0–16. Wraps the generated `V1.StatusCode` so the set stays closed.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let wire: V1.StatusCode
        public init(_ wire: V1.StatusCode) { self.wire = wire }

        public static let ok = Code(.ok)
        public static let cancelled = Code(.cancelled)
        public static let unknown = Code(.unknown)
        public static let invalidArgument = Code(.invalidArgument)
        public static let deadlineExceeded = Code(.deadlineExceeded)
        public static let notFound = Code(.notFound)
        public static let alreadyExists = Code(.alreadyExists)
        public static let permissionDenied = Code(.permissionDenied)
        public static let resourceExhausted = Code(.resourceExhausted)
        public static let failedPrecondition = Code(.failedPrecondition)
        public static let aborted = Code(.aborted)
        public static let outOfRange = Code(.outOfRange)
        public static let unimplemented = Code(.unimplemented)
        public static let `internal` = Code(.internal)
        public static let unavailable = Code(.unavailable)
        public static let dataLoss = Code(.dataLoss)
        public static let unauthenticated = Code(.unauthenticated)

        /// `NOT_FOUND`, as gRPC spells it.
        public var description: String {
            V1.StatusCode.protoDescriptor.name(of: wire.protoValue)
                .map { String($0.dropFirst("STATUS_CODE_".count)) } ?? "CODE_\(wire.protoValue)"
        }
    }

    public var code: Code
    public var message: String
    /// Machine-readable extras, for example `retry-after-ms`.
    public var details: [String: String]

    public init(_ code: Code, _ message: String, details: [String: String] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code): \(message)" }

    /// The status to put on the wire.
    public var status: V1.Status {
        V1.Status(
            code: code.wire, message: message,
            details: details.sorted { $0.key < $1.key }.map { V1.MetadataEntry(key: $0.key, value: $0.value) })
    }

    /// A status from the wire. A code outside gRPC's 0–16 is UNKNOWN, with the number it had kept
    /// in the details (`status-code`): nothing downstream, an exit code least of all, may read an
    /// unknown number as something else (256 would be exit status 0, success).
    public init(status: V1.Status) {
        var details = Dictionary(status.details.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        var code = Code(status.code)
        if !(0...16).contains(status.code.protoValue) {
            details["status-code"] = String(status.code.protoValue)
            code = .unknown
        }
        self.init(code, status.message, details: details)
    }
}

extension RPCError {
    /// Ends a server stream whose reader left more unread than ``StreamInbox`` holds, over TCP
    /// and in process alike (``RPCClientConfiguration/maxBufferedStreamMessages`` and
    /// ``RPCClientConfiguration/maxBufferedStreamBytes``).
    static func streamReaderFellBehind(_ limits: StreamInbox.Limits) -> RPCError {
        RPCError(
            .resourceExhausted,
            "the stream's reader fell more than \(limits.maxMessages) messages or \(limits.maxBytes) bytes behind; "
                + "the call was ended: reopen it from the last position read")
    }

    /// UNAVAILABLE for a call refused before anything of it ran: a draining server turned it
    /// away, or the connection was going away or gone before the request was sent. Sending it
    /// again cannot do its work twice, so ``RPCConnectionPool`` retries it even for a method that
    /// is not idempotent (gRPC's "transparent retry").
    public static func notStarted(_ message: String) -> RPCError {
        RPCError(.unavailable, message, details: [MetadataKey.notStarted: "true"])
    }

    /// True for a ``notStarted(_:)`` error, from this process or from the wire.
    public var wasNotStarted: Bool { code == .unavailable && details[MetadataKey.notStarted] == "true" }
}
