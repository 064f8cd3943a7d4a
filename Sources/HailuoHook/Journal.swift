import CZlib
import Foundation
import Glibc
import HTTPServer
import Synchronization

/// One accepted change, as the journal keeps it.
public enum JournalRecord: Sendable, Codable, Equatable {
    /// A task as it stands (a submission, a changed link, or compaction), with its callback token.
    case task(VideoTask, token: String?)
    /// An update received through a task's own callback token.
    case callback(token: String, update: StatusUpdate, at: Date)
    /// An update applied by task id (the shared callback token, or polling).
    case apply(update: StatusUpdate, via: TaskEvent.Via, createIfMissing: Bool, at: Date)
    /// A submission's answer kept for its Idempotency-Key.
    case idempotency(IdempotencyEntry)
}

/// The registry's append-only file (`registry.journal`): one record a line,
/// `<crc32 hex>\t<json>\n`, written before the answer is sent and replayed at
/// start. A torn or corrupt tail is cut off; a corrupt record in the middle is
/// skipped; both are reported.
///
/// Durability: every record is `write(2)`-ten before the answer, so a killed
/// process loses nothing it acknowledged; `fsync` runs at most once a second
/// in the background and at shutdown, so a power loss can take the last second.
public final class Journal: Sendable {
    public struct ReplayReport: Sendable, Equatable {
        public var records = 0
        /// Bytes cut from the end (a torn last write).
        public var cutBytes = 0
        /// Records skipped in the middle, by line number.
        public var skippedLines: [Int] = []

        public init(records: Int = 0, cutBytes: Int = 0, skippedLines: [Int] = []) {
            self.records = records
            self.cutBytes = cutBytes
            self.skippedLines = skippedLines
        }
    }

    struct State {
        var fd: Int32
        var bytes: Int
        var dirty = false
        /// Size right after the last compaction.
        var compactedBytes = 0
        /// While a compaction writes its snapshot, new records are also kept here.
        var capture: [UInt8]?
    }

    public let path: String
    private let state: Mutex<State>

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError("cannot open the journal \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        fstat(fd, &st)
        state = Mutex(State(fd: fd, bytes: Int(st.st_size)))
    }

    deinit {
        state.withLock { _ = Glibc.close($0.fd) }
    }

    public var size: Int { state.withLock { $0.bytes } }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    /// The line for a record: its CRC-32, a tab, its JSON, a newline. The two records
    /// written by the thousand (a callback, a task) are written by hand (`JSONWriter`),
    /// the rare others by JSONEncoder.
    public static func line(_ record: JournalRecord) -> [UInt8] {
        var writer = JSONWriter(capacity: 256)
        writer.out.append(contentsOf: [UInt8](repeating: 0x30, count: 8))
        writer.out.append(0x09)
        switch record {
        case .callback(let token, let update, let at):
            writer.journalCallback(token: token, update: update, at: at)
        case .task(let task, let token):
            writer.journalTask(task, token: token)
        default:
            writer.out.append(contentsOf: (try? encoder.encode(record)) ?? Data())
        }
        let crc = writer.out.withUnsafeBufferPointer { crc32(0, $0.baseAddress! + 9, uInt($0.count - 9)) }
        let hex = Array("0123456789abcdef".utf8)
        for k in 0..<8 { writer.out[k] = hex[Int((UInt32(crc) >> UInt32(28 - 4 * k)) & 0xF)] }
        writer.out.append(0x0A)
        return writer.out
    }

    /// Writes all of `bytes`, retrying short writes and EINTR.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], what: String) throws(JournalError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw JournalError("\(what) failed: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }

    /// Appends one record (one `write`); a failed write is thrown, so the change is not acknowledged.
    public func append(_ line: [UInt8]) throws {
        try state.withLock { s in
            try Journal.writeAll(s.fd, line, what: "journal write")
            s.bytes += line.count
            s.dirty = true
            s.capture?.append(contentsOf: line)
        }
    }

    /// Whether the file has grown enough past its last compaction to be worth another:
    /// twice that size, and 16 MiB more at least.
    public var wantsCompaction: Bool {
        state.withLock { $0.bytes > 2 * $0.compactedBytes + 16 << 20 }
    }

    /// From now on, appended records are also kept aside for `rewrite`.
    func beginCapture() {
        state.withLock { $0.capture = [] }
    }

    func endCapture() {
        state.withLock { $0.capture = nil }
    }

    /// Flushes to the disk if anything was written since the last time.
    public func sync() {
        let fd = state.withLock { s -> Int32? in
            guard s.dirty else { return nil }
            s.dirty = false
            return s.fd
        }
        if let fd { fsync(fd) }
    }

    /// Reads every valid record in order. Bad lines before the last good one
    /// are skipped and reported; everything after it (a torn or corrupt tail)
    /// is cut off the file.
    public func replay(_ apply: (JournalRecord) -> Void) throws -> ReplayReport {
        var report = ReplayReport()
        // Mapped, not read into memory: a 250 MB journal read and copied cost a fifth of
        // its replay in page zeroing and copies (perf, bench/README.md).
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return report }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return report }
        let size = Int(st.st_size)
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw JournalError("cannot map the journal: \(String(cString: strerror(errno)))")
        }
        defer { munmap(map, size) }
        madvise(map, size, MADV_SEQUENTIAL)
        let bytes = UnsafeRawBufferPointer(start: map, count: size)
        var start = 0
        var lineNumber = 0
        var lastGood = 0
        var bad: [(line: Int, end: Int)] = []
        while start < size {
            lineNumber += 1
            let newline = memchr(map + start, 0x0A, size - start).map { $0 - UnsafeMutableRawPointer(map) }
            let end = newline ?? size
            if newline != nil, let record = Journal.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<end])) {
                apply(record)
                report.records += 1
                lastGood = end + 1
            } else {
                bad.append((lineNumber, end))
            }
            start = end + 1
        }
        report.skippedLines = bad.filter { $0.end < lastGood }.map(\.line)
        if lastGood < size {
            report.cutBytes = size - lastGood
            try state.withLock { s in
                guard ftruncate(s.fd, off_t(lastGood)) == 0 else {
                    throw JournalError("cannot cut the journal's tail: \(String(cString: strerror(errno)))")
                }
                s.bytes = lastGood
            }
        }
        return report
    }

    static func decode(_ line: UnsafeRawBufferPointer) -> JournalRecord? {
        guard line.count > 9, line[8] == 0x09,
              let expected = UInt32(String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<8]), as: UTF8.self), radix: 16) else { return nil }
        let json = UnsafeRawBufferPointer(rebasing: line[9...])
        let crc = crc32(0, json.baseAddress?.assumingMemoryBound(to: UInt8.self), uInt(json.count))
        guard UInt32(crc) == expected else { return nil }
        return JSONReader.journalRecord(json) ?? (try? decoder.decode(JournalRecord.self, from: Data(json)))
    }

    /// Replaces the file with `records` (compaction). Call after
    /// `beginCapture()`: the snapshot is written to a temporary file without
    /// holding anything, then the records appended meanwhile are added, the
    /// file synced and renamed over the journal, so a crash leaves one or the other.
    /// `finish` runs the last step; the caller wraps it in its own lock so no
    /// record lands in between.
    public func rewrite(_ records: [JournalRecord], finish: (() throws -> Void) throws -> Void) throws {
        let temporary = path + ".compact"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError("cannot write \(temporary): \(String(cString: strerror(errno)))") }
        var total = 0
        func write(_ buffer: [UInt8]) throws {
            try Journal.writeAll(fd, buffer, what: "compaction write")
            total += buffer.count
        }
        do {
            var buffer: [UInt8] = []
            for record in records {
                buffer.append(contentsOf: Journal.line(record))
                if buffer.count > 1 << 20 { try write(buffer); buffer.removeAll(keepingCapacity: true) }
            }
            try write(buffer)
            try finish {
                try state.withLock { s in
                    try write(s.capture ?? [])
                    s.capture = nil
                    fsync(fd)
                    guard rename(temporary, path) == 0 else {
                        throw JournalError("cannot replace the journal: \(String(cString: strerror(errno)))")
                    }
                    let fresh = open(path, O_WRONLY | O_APPEND | O_CLOEXEC, 0o600)
                    guard fresh >= 0 else { throw JournalError("cannot reopen the journal") }
                    Glibc.close(s.fd)
                    s.fd = fresh
                    s.bytes = total
                    s.compactedBytes = total
                    s.dirty = false
                }
            }
        } catch {
            Glibc.close(fd)
            unlink(temporary)
            endCapture()
            throw error
        }
        Glibc.close(fd)
    }
}

public struct JournalError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
