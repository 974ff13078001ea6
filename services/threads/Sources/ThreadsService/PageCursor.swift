import Foundation
import PlatosProto
import PlatosRPC

/// Where a list page ended: the sort key of its last row. Opaque to callers (base64), and it
/// names no scope, so a token lifted from another caller only continues that caller's own list.
public struct PageCursor: Sendable, Equatable {
    static let defaultPageSize = 50
    static let maxPageSize = 500

    public var createdAt: Int64
    public var id: String

    public init(createdAt: Int64, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    var token: String {
        Data("\(createdAt):\(id)".utf8).base64EncodedString()
    }

    /// Nil for an empty token (the first page); `INVALID_ARGUMENT` for one longer than any this
    /// service issues, or that does not decode.
    static func decode(_ token: String) throws -> PageCursor? {
        if token.isEmpty { return nil }
        // Checked before decoding: the id inside is bound into the page's statement.
        try RequestLimits.limit(token, "page.page_token", RequestLimits.maxPageTokenBytes)
        guard let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            let colon = text.firstIndex(of: ":"), let createdAt = Int64(text[..<colon])
        else {
            throw RPCError(.invalidArgument, "page.page_token is not a token this service issued")
        }
        return PageCursor(createdAt: createdAt, id: String(text[text.index(after: colon)...]))
    }

    static func pageSize(_ page: V1.PageRequest?) throws -> Int {
        guard let size = page?.pageSize, size > 0 else { return defaultPageSize }
        guard size <= maxPageSize else {
            throw RPCError(.invalidArgument, "page.page_size is \(size); the limit is \(maxPageSize)")
        }
        return Int(size)
    }
}
