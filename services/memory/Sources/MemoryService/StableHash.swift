/// A 64-bit hash that is the same in every process and every release (unlike `Hasher`, which is
/// seeded per process), because its values are written into the full-text index and must still
/// match the queries of the next process that opens the file.
///
/// FNV-1a over the bytes, then the SplitMix64 finaliser so every output bit depends on every
/// input bit: the index uses a few base-36 digits of it, and FNV alone mixes its high bits poorly.
struct StableHash {
    private(set) var state: UInt64 = 0xcbf2_9ce4_8422_2325

    init() {}

    mutating func combine<Bytes: Sequence>(bytes: Bytes) where Bytes.Element == UInt8 {
        for byte in bytes {
            state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
    }

    /// Adds a field with its length first, so ("ab", "c") and ("a", "bc") hash differently.
    mutating func combine(field: String) {
        var length = UInt64(field.utf8.count)
        withUnsafeBytes(of: &length) { combine(bytes: $0) }
        combine(bytes: field.utf8)
    }

    var value: UInt64 {
        var z = state &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// `digits` base-36 digits (0-9, a-z) of the hash: characters every FTS5 tokenizer keeps
    /// inside one token and never reads as query syntax.
    func base36(digits: Int) -> String {
        var v = value
        var out = [UInt8](repeating: 0, count: digits)
        for i in 0..<digits {
            let d = UInt8(v % 36)
            out[digits - 1 - i] = d < 10 ? 0x30 + d : 0x61 + d - 10
            v /= 36
        }
        return String(decoding: out, as: UTF8.self)
    }
}
