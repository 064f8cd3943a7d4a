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
/// with another body is refused (422). In this process (with the journal), or in
/// PostgreSQL (`hailuo_idempotency`) when the replicas share one: then a repeat that
/// reaches another replica is answered the same.
public final class IdempotencyKeys: Sendable {
    public static let lifetime: TimeInterval = 24 * 3600
    /// A key still "in progress" this long after it began is taken as abandoned (its
    /// replica died mid-submit): longer than any submit may take.
    public static let stalled: TimeInterval = 300

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
    private let pool: PostgresPool?

    public init(journal: Journal?) {
        self.journal = journal
        self.pool = nil
    }

    /// Shared by every replica on the database of `pool`.
    public init(pool: PostgresPool) {
        self.journal = nil
        self.pool = pool
    }

    public static func digest(_ body: [UInt8]) -> String {
        body.withUnsafeBufferPointer { p -> String in
            let c = crc32(0, p.baseAddress, uInt(p.count))
            let a = adler32(1, p.baseAddress, uInt(p.count))
            return String(format: "%08x%08x-%d", UInt32(c), UInt32(a), p.count)
        }
    }

    public func begin(key: String, body: [UInt8], now: Date = Date()) throws(StoreError) -> Begin {
        let digest = IdempotencyKeys.digest(body)
        if let pool { return try IdempotencyKeys.begin(pool, key: key, digest: digest, now: now) }
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
        if let pool {
            // Best effort, as the journal's: a lost entry means a repeat is submitted again.
            guard let text = try? Journal.encoder.encode(entry) else { return }
            _ = try? pool.withConnection { c throws(PostgresError) in
                try c.query("UPDATE hailuo_idempotency SET entry = $2, created_at = $3 WHERE key = $1",
                            [key, String(decoding: text, as: UTF8.self), now.timeIntervalSince1970.description])
            }
            return
        }
        if let journal { try? journal.append(Journal.line(.idempotency(entry))) }
        slots.withLock { $0[key] = .done(entry) }
    }

    /// Forgets a key whose submission did not get an answer worth keeping (an upstream failure: retrying is right).
    public func abandon(key: String) {
        if let pool {
            _ = try? pool.withConnection { c throws(PostgresError) in
                try c.query("DELETE FROM hailuo_idempotency WHERE key = $1 AND entry LIKE 'in progress %'", [key])
            }
            return
        }
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

    /// The shared form: the key's row is claimed with an insert that only one replica wins;
    /// a row holds `in progress <digest>` until its answer (an `IdempotencyEntry` as JSON).
    private static func begin(_ pool: PostgresPool, key: String, digest: String, now: Date) throws(StoreError) -> Begin {
        do {
            return try pool.withConnection { c throws(PostgresError) -> Begin in
                for _ in 0..<4 {
                    let claimed = try c.query("""
                        INSERT INTO hailuo_idempotency (key, entry, created_at) VALUES ($1, $2, $3)
                        ON CONFLICT (key) DO NOTHING RETURNING key
                        """, [key, "in progress \(digest)", now.timeIntervalSince1970.description])
                    if !claimed.isEmpty { return .proceed }
                    let found = try c.query("SELECT entry, created_at FROM hailuo_idempotency WHERE key = $1", [key])
                    guard let row = found.rows.first, let text = row[0], let at = row[1].flatMap(Double.init) else { continue }
                    let age = now.timeIntervalSince1970 - at
                    if text.hasPrefix("in progress ") {
                        if age < stalled { return text == "in progress \(digest)" ? .inProgress : .otherBody }
                    } else if age < lifetime, let entry = try? Journal.decoder.decode(IdempotencyEntry.self, from: Data(text.utf8)) {
                        return entry.bodyDigest == digest ? .replay(entry) : .otherBody
                    }
                    // Expired, or abandoned by a replica that died: free it, and claim it again.
                    try c.query("DELETE FROM hailuo_idempotency WHERE key = $1 AND created_at = $2", [key, row[1]])
                }
                throw PostgresError(.retryable, "Idempotency-Key \(key) kept changing")
            }
        } catch {
            throw StoreError("PostgreSQL: \(error)")
        }
    }

    private static func expire(_ slots: inout [String: Slot], now: Date) {
        slots = slots.filter { _, slot in
            if case .done(let e) = slot { return now.timeIntervalSince(e.createdAt) < lifetime }
            return true
        }
    }
}
