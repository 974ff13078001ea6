import Foundation
import PlatosAuth
import Testing

@Suite struct ConstantTimeTests {
    @Test func equalOnlyForTheSameBytes() {
        let a: [UInt8] = Array(0..<32)
        #expect(ConstantTime.equal(a, a))
        #expect(ConstantTime.equal(a, Data(a)))
        for i in a.indices {
            var b = a
            b[i] ^= 0x01
            #expect(!ConstantTime.equal(a, b), "a difference in byte \(i) went unnoticed")
        }
        #expect(!ConstantTime.equal(a, Array(a.dropLast())))
        #expect(ConstantTime.equal([UInt8](), Data()))
    }
}
