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

    /// One page read from `next` (a cursor over at most one row more than a page): items until
    /// the page holds `limit` of them or is full by size, and whether more follow (the extra row,
    /// or one left out because the page was full). Rows past the cut are not read further. The
    /// first item always goes in: a single item is within the frame limit by itself.
    public static func page<Item>(
        limit: Int, bytes: Int = ResponseBudget.bytes, size: (Item) -> Int, next: () throws -> Item?
    ) rethrows -> (items: [Item], more: Bool) {
        var items: [Item] = []
        items.reserveCapacity(min(limit, 64))
        var total = 0
        while let item = try next() {
            total += size(item)
            guard items.count < limit, items.isEmpty || total <= bytes else { return (items, true) }
            items.append(item)
        }
        return (items, false)
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
