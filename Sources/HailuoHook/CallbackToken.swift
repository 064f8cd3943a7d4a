import Foundation
import Glibc

/// The secret path segment of a callback URL: 128 random bits from the
/// system's CSPRNG, as 32 lower-case hex characters.
public struct CallbackToken: Sendable, Hashable, CustomStringConvertible {
    public let value: String

    public init(_ value: String) { self.value = value }

    /// A fresh token from the kernel's CSPRNG.
    public static func generate() -> CallbackToken {
        // SystemRandomNumberGenerator reads getrandom(2) on Linux.
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return CallbackToken(bytes.map { String(format: "%02x", $0) }.joined())
    }

    public var description: String { "\(value.prefix(4))…" }

    /// Equality whose time does not depend on where the strings first differ.
    /// (Only the length, which is fixed for real tokens, can show in the time.)
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                var diff = x.count ^ y.count
                for i in 0..<min(x.count, y.count) { diff |= Int(x[i] ^ y[i]) }
                return diff == 0
            }
        }
    }
}

/// A dictionary key for secrets: hashed with Swift's per-process random seed
/// and compared in constant time, so a lookup's timing says nothing useful
/// about how close a guess was.
struct SecretKey: Hashable, Sendable {
    let value: String

    init(_ value: String) { self.value = value }

    static func == (a: SecretKey, b: SecretKey) -> Bool {
        CallbackToken.constantTimeEquals(a.value, b.value)
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(value)
    }
}
