import Foundation

/// Equality of secrets (MACs, token hashes) in a time that depends only on their lengths: how
/// much of a guess was right must not show in the timing.
public enum ConstantTime {
    public static func equal(_ a: some ContiguousBytes, _ b: some ContiguousBytes) -> Bool {
        a.withUnsafeBytes { a in
            b.withUnsafeBytes { b in
                guard a.count == b.count else { return false }
                var difference: UInt8 = 0
                for i in 0..<a.count { difference |= a[i] ^ b[i] }
                return difference == 0
            }
        }
    }
}
