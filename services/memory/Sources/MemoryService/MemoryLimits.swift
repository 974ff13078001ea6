/// The input limits of the memory service (issue 6). Sizes are UTF-8 bytes.
public enum MemoryLimits {
    public static let maxContentBytes = 64 * 1024
    public static let maxTags = 32
    public static let maxTagBytes = 256
    /// Keys plus values.
    public static let maxMetadataBytes = 16 * 1024
    public static let maxQueryBytes = 1024
    public static let maxIdempotencyKeyBytes = 256
    public static let maxIdBytes = 128

    public static let defaultRecallLimit = 10
    /// A larger `limit` is lowered to this, as list APIs usually do, rather than refused.
    public static let maxRecallLimit = 100
    public static let defaultPageSize = 50
    public static let maxPageSize = 500
}
