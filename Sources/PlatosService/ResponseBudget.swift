import PlatosProto

/// How much one answer carries. Each item of a list is within its own limits (content ≤ 64 KiB,
/// metadata ≤ 16 KiB, …), but a page of them together can pass the 4 MiB frame limit, and the
/// call would then fail with `RESOURCE_EXHAUSTED` at the default page size, for data the caller
/// was allowed to write. So lists end a page early once it holds ``bytes``, and say that more
/// follows (a page token, `has_more`): the caller just reads on.
public enum ResponseBudget {
    /// Half the default frame limit: room for the frame, the encoding's overhead and the answer's
    /// other fields.
    public static let bytes = 2 * 1024 * 1024

    /// How many of the leading `items` (at most `limit`) fit in `bytes` by `size`: always at
    /// least one when there is one, since a single item is within the frame limit by itself.
    public static func count<C: Collection>(
        of items: C, limit: Int, bytes: Int = ResponseBudget.bytes, size: (C.Element) -> Int
    ) -> Int {
        var total = 0
        var count = 0
        for item in items.prefix(limit) {
            total += size(item)
            if count > 0, total > bytes { break }
            count += 1
        }
        return count
    }

    /// The encoded size of a string map, near enough.
    public static func size(of map: [String: String]) -> Int {
        map.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count + 8 }
    }

    // What each kind of listed item takes in an answer, near enough: its texts plus a fixed
    // allowance for ids, numbers and field tags.

    public static func size(of item: V1.MemoryItem) -> Int {
        item.content.utf8.count + item.tags.reduce(0) { $0 + $1.utf8.count + 2 } + size(of: item.metadata) + 256
    }

    public static func size(of entry: V1.MemoryHistoryEntry) -> Int {
        entry.oldContent.utf8.count + entry.newContent.utf8.count + 128
    }

    public static func size(of thread: V1.Thread) -> Int {
        thread.title.utf8.count + size(of: thread.metadata) + 192
    }

    public static func size(of message: V1.Message) -> Int {
        message.content.utf8.count + size(of: message.metadata) + 192
    }

    public static func size(of task: V1.Task) -> Int {
        task.prompt.utf8.count + task.result.utf8.count + task.error.utf8.count + 256
    }
}
