/// Random resource ids: a short type prefix and 128 random bits in lower-case base32, so ids are
/// unguessable (a foreign id cannot be found by counting) and tell a reader what they name.
enum ResourceID {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    static func make(_ prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        var high = generator.next() as UInt64
        var low = generator.next() as UInt64
        var out = [UInt8](prefix.utf8)
        out.append(UInt8(ascii: "_"))
        // 26 characters × 5 bits = 130 bits: the 128 random bits, taken 5 at a time.
        for _ in 0..<26 {
            out.append(alphabet[Int(low & 31)])
            low = (low >> 5) | ((high & 31) << 59)
            high >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}
