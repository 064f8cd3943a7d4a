import CZlib
import Foundation
import Synchronization

/// A submission's answer kept under its `Idempotency-Key`.
public struct IdempotencyEntry: Sendable, Codable, Equatable {
    public var key: String
    /// CRC-32, Adler-32 and length of the request body: tells a repeat from another body.
    public var bodyDigest: String
    public var status: Int
    public var answer: [UInt8]
    public var createdAt: Date
}

/// `Idempotency-Key` on submit: a repeat of the same key and body answers
/// the first result instead of submitting again (kept 24 h); the same key
/// with another body is refused (422).
public final class IdempotencyKeys: Sendable {
    public static let lifetime: TimeInterval = 24 * 3600

    public enum Begin: Sendable, Equatable {
        case proceed
        case replay(IdempotencyEntry)
        case otherBody
        case inProgress
    }

    enum Slot {
        case inProgress(digest: String)
        case done(IdempotencyEntry)
    }

    private let slots = Mutex<[String: Slot]>([:])
    private let journal: Journal?

    public init(journal: Journal?) {
        self.journal = journal
    }

    public static func digest(_ body: [UInt8]) -> String {
        body.withUnsafeBufferPointer { p -> String in
            let c = crc32(0, p.baseAddress, uInt(p.count))
            let a = adler32(1, p.baseAddress, uInt(p.count))
            return String(format: "%08x%08x-%d", UInt32(c), UInt32(a), p.count)
        }
    }

    public func begin(key: String, body: [UInt8], now: Date = Date()) -> Begin {
        let digest = IdempotencyKeys.digest(body)
        return slots.withLock { slots in
            switch slots[key] {
            case .done(let entry) where now.timeIntervalSince(entry.createdAt) < IdempotencyKeys.lifetime:
                return entry.bodyDigest == digest ? .replay(entry) : .otherBody
            case .inProgress(let d):
                return d == digest ? .inProgress : .otherBody
            default:
                slots[key] = .inProgress(digest: digest)
                if slots.count % 1024 == 0 { IdempotencyKeys.expire(&slots, now: now) }
                return .proceed
            }
        }
    }

    /// Keeps the answer of a submission (only answers worth repeating: success and refusals of the body).
    public func finish(key: String, body: [UInt8], status: Int, answer: [UInt8], now: Date = Date()) {
        let entry = IdempotencyEntry(key: key, bodyDigest: IdempotencyKeys.digest(body), status: status, answer: answer, createdAt: now)
        if let journal { try? journal.append(Journal.line(.idempotency(entry))) }
        slots.withLock { $0[key] = .done(entry) }
    }

    /// Forgets a key whose submission did not get an answer worth keeping (an upstream failure: retrying is right).
    public func abandon(key: String) {
        slots.withLock { slots in
            if case .inProgress = slots[key] { slots[key] = nil }
        }
    }

    func restore(_ entry: IdempotencyEntry) {
        slots.withLock { $0[entry.key] = .done(entry) }
    }

    /// Entries still alive, for compaction.
    func entries(now: Date = Date()) -> [IdempotencyEntry] {
        slots.withLock { slots in
            slots.values.compactMap { slot in
                if case .done(let e) = slot, now.timeIntervalSince(e.createdAt) < IdempotencyKeys.lifetime { return e }
                return nil
            }
        }
    }

    private static func expire(_ slots: inout [String: Slot], now: Date) {
        slots = slots.filter { _, slot in
            if case .done(let e) = slot { return now.timeIntervalSince(e.createdAt) < lifetime }
            return true
        }
    }
}
