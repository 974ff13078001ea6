/// Why a message could not be converted. The text names the message and field where known, so a
/// person reading an `INVALID_ARGUMENT` can fix the input.
public enum ProtoError: Error, Hashable, CustomStringConvertible {
    /// The encoded message is larger than the limit; nothing was unpacked.
    case tooLarge(size: Int, limit: Int)
    /// protobuf-c rejected the bytes.
    case malformed(message: String)
    /// A value cannot be represented (for example a NUL inside a string).
    case invalidValue(String)
    /// A JSON document does not fit the message.
    case json(path: String, problem: String)

    public var description: String {
        switch self {
        case .tooLarge(let size, let limit):
            return "encoded message is \(size) bytes, more than the limit of \(limit) bytes"
        case .malformed(let message):
            return "bytes are not a valid \(message)"
        case .invalidValue(let problem):
            return problem
        case .json(let path, let problem):
            return path.isEmpty ? "JSON: \(problem)" : "JSON field '\(path)': \(problem)"
        }
    }
}

extension ProtoError {
    /// A string's problem with the field it is in, `platos.v1.Frame.method contains a NUL
    /// character`: the person reading it must know which value to fix. Other errors pass as they
    /// are.
    @usableFromInline
    static func naming(_ error: any Error, _ descriptor: ProtoMessageDescriptor, _ field: Int) -> any Error {
        guard case ProtoError.invalidValue(let problem) = error else { return error }
        return ProtoError.invalidValue("\(descriptor.fullName).\(String(cString: descriptor.field(field).pointee.name)) \(problem)")
    }
}
