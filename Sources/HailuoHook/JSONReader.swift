import Foundation

/// A strict JSON reader for the few shapes read on hot paths (a callback's body, the
/// journal's task and callback records), read in place without building a tree.
///
/// It answers only when it is sure to read what `JSONDecoder` reads: whatever it is not
/// sure of — a key written with escapes, a repeated key, a number that is not a plain
/// integer where an integer is wanted, a lone surrogate, invalid UTF-8, nesting past 64,
/// a value of an unexpected type, a missing required key — makes it give up, and the
/// caller decodes the same bytes with `JSONDecoder`, which then decides (and words the
/// error). The fuzzer (`hailuo-fuzz`, mode 2) and `JSONReaderTests` hold the two equal.
/// JSONDecoder was a quarter of a callback's CPU and half of the journal's replay (perf,
/// bench/README.md).
struct JSONReader {
    /// Not read here: decode with JSONDecoder.
    struct GiveUp: Error {}

    private let bytes: UnsafeRawBufferPointer
    private var i = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Reads `bytes` with `read`, which must consume one value; only whitespace may follow.
    static func read<T>(_ bytes: UnsafeRawBufferPointer, _ read: (inout JSONReader) throws(GiveUp) -> T) -> T? {
        var reader = JSONReader(bytes)
        do {
            let value = try read(&reader)
            reader.skipWhitespace()
            return reader.i == bytes.count ? value : nil
        } catch {
            return nil
        }
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8) throws(GiveUp) {
        skipWhitespace()
        guard peek == byte else { throw GiveUp() }
        i += 1
    }

    private mutating func literal(_ word: StaticString) throws(GiveUp) {
        let n = word.utf8CodeUnitCount
        guard i + n <= bytes.count else { throw GiveUp() }
        for k in 0..<n where bytes[i + k] != word.utf8Start[k] { throw GiveUp() }
        i += n
    }

    /// Whether the next value is `null` (consumed if so).
    mutating func null() throws(GiveUp) -> Bool {
        skipWhitespace()
        guard peek == 0x6E else { return false }
        try literal("null")
        return true
    }

    /// The members of an object, each key (raw bytes, no escapes) given to `member`,
    /// which must consume its value. Repeated keys are for `member` to refuse.
    mutating func object(_ member: (UnsafeRawBufferPointer, inout JSONReader) throws(GiveUp) -> Void) throws(GiveUp) {
        try expect(0x7B)
        skipWhitespace()
        if peek == 0x7D { i += 1; return }
        while true {
            try expect(0x22)
            let start = i
            while i < bytes.count, bytes[i] != 0x22 {
                let c = bytes[i]
                guard c >= 0x20, c != 0x5C, c < 0x80 else { throw GiveUp() }
                i += 1
            }
            guard i < bytes.count else { throw GiveUp() }
            let key = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
            i += 1
            try expect(0x3A)
            try member(key, &self)
            skipWhitespace()
            guard let c = peek else { throw GiveUp() }
            i += 1
            if c == 0x7D { return }
            guard c == 0x2C else { throw GiveUp() }
        }
    }

    /// The elements of an array, each read by `element`.
    mutating func array(_ element: (inout JSONReader) throws(GiveUp) -> Void) throws(GiveUp) {
        try expect(0x5B)
        skipWhitespace()
        if peek == 0x5D { i += 1; return }
        while true {
            try element(&self)
            skipWhitespace()
            guard let c = peek else { throw GiveUp() }
            i += 1
            if c == 0x5D { return }
            guard c == 0x2C else { throw GiveUp() }
        }
    }

    /// What follows an opening quote, up to the first byte that is not plain text.
    private enum Scan {
        /// The string ended without escapes (consumed, closing quote included).
        case plain(UnsafeRawBufferPointer, ascii: Bool)
        /// An escape at `i`: the bytes before it are `start..<i`.
        case escape
        /// A control byte, or the input ended.
        case invalid
    }

    private mutating func scanPlain(from start: Int) -> Scan {
        var ascii = true
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x22 {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
                i += 1
                return .plain(raw, ascii: ascii)
            }
            if c == 0x5C { return .escape }
            guard c >= 0x20 else { return .invalid }
            if c >= 0x80 { ascii = false }
            i += 1
        }
        return .invalid
    }

    mutating func string() throws(GiveUp) -> String {
        try expect(0x22)
        let start = i
        switch scanPlain(from: start) {
        case .plain(let raw, let ascii):
            if ascii { return String(decoding: raw, as: UTF8.self) }
            guard let s = String(validating: raw, as: UTF8.self) else { throw GiveUp() }
            return s
        case .invalid: throw GiveUp()
        case .escape: break
        }
        // With escapes: the bytes rebuilt, then validated.
        var out = [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
        while i < bytes.count {
            let c = bytes[i]
            i += 1
            switch c {
            case 0x22:
                guard let s = String(validating: out, as: UTF8.self) else { throw GiveUp() }
                return s
            case 0x5C:
                guard let e = peek else { throw GiveUp() }
                i += 1
                switch e {
                case 0x22, 0x5C, 0x2F: out.append(e)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try literal("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw GiveUp() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw GiveUp()
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw GiveUp() }
                    out.append(contentsOf: UTF8.encode(u)!)
                default: throw GiveUp()
                }
            default:
                guard c >= 0x20 else { throw GiveUp() }
                out.append(c)
            }
        }
        throw GiveUp()
    }

    private mutating func hex4() throws(GiveUp) -> UInt32 {
        guard i + 4 <= bytes.count else { throw GiveUp() }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            i += 1
            switch c {
            case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
            case 0x41...0x46: v = v << 4 | UInt32(c - 0x41 + 10)
            case 0x61...0x66: v = v << 4 | UInt32(c - 0x61 + 10)
            default: throw GiveUp()
            }
        }
        return v
    }

    /// The bytes of a number, checked against JSON's grammar; whether it is a plain integer.
    private mutating func number() throws(GiveUp) -> (UnsafeRawBufferPointer, integer: Bool) {
        skipWhitespace()
        let start = i
        if peek == 0x2D { i += 1 }
        guard let first = peek, (0x30...0x39).contains(first) else { throw GiveUp() }
        i += 1
        if first != 0x30 { digits() }
        var integer = true
        if peek == 0x2E {
            i += 1
            integer = false
            guard try digitsRequired() else { throw GiveUp() }
        }
        if peek == 0x65 || peek == 0x45 {
            i += 1
            integer = false
            if peek == 0x2B || peek == 0x2D { i += 1 }
            guard try digitsRequired() else { throw GiveUp() }
        }
        return (UnsafeRawBufferPointer(rebasing: bytes[start..<i]), integer)
    }

    private mutating func digits() {
        while let c = peek, (0x30...0x39).contains(c) { i += 1 }
    }

    private mutating func digitsRequired() throws(GiveUp) -> Bool {
        let start = i
        digits()
        return i > start
    }

    /// A plain integer of at most 18 digits (so it fits any Int64 without a doubt).
    mutating func int() throws(GiveUp) -> Int {
        let (raw, integer) = try number()
        guard integer, raw.count <= 18 else { throw GiveUp() }
        var v = 0
        var negative = false
        for c in raw {
            if c == 0x2D { negative = true } else { v = v * 10 + Int(c - 0x30) }
        }
        return negative ? -v : v
    }

    mutating func double() throws(GiveUp) -> Double {
        let (raw, _) = try number()
        guard let d = Double(String(decoding: raw, as: UTF8.self)), d.isFinite else { throw GiveUp() }
        return d
    }

    mutating func bool() throws(GiveUp) -> Bool {
        skipWhitespace()
        if peek == 0x74 { try literal("true"); return true }
        try literal("false")
        return false
    }

    /// Any value, checked and thrown away.
    mutating func skip(depth: Int = 0) throws(GiveUp) {
        guard depth < 64 else { throw GiveUp() }
        skipWhitespace()
        switch peek {
        case 0x22: _ = try string()
        case 0x7B: try object { _, r throws(GiveUp) in try r.skip(depth: depth + 1) }
        case 0x5B: try array { r throws(GiveUp) in try r.skip(depth: depth + 1) }
        case 0x74, 0x66: _ = try bool()
        case 0x6E: _ = try null()
        default: _ = try number()
        }
    }

    /// Any value, as `JSONValue` decodes it (repeated keys give up).
    mutating func value(depth: Int = 0) throws(GiveUp) -> JSONValue {
        guard depth < 64 else { throw GiveUp() }
        skipWhitespace()
        switch peek {
        case 0x22: return .string(try string())
        case 0x7B:
            var object: [String: JSONValue] = [:]
            try self.object { key, r throws(GiveUp) in
                let name = String(decoding: key, as: UTF8.self)
                guard object[name] == nil else { throw GiveUp() }
                object[name] = try r.value(depth: depth + 1)
            }
            return .object(object)
        case 0x5B:
            var array: [JSONValue] = []
            try self.array { r throws(GiveUp) in array.append(try r.value(depth: depth + 1)) }
            return .array(array)
        case 0x74, 0x66: return .bool(try bool())
        case 0x6E: _ = try null(); return .null
        default: return .number(try double())
        }
    }

    /// The next value's bytes when they are an object exactly as `JSONWriter.value` writes
    /// it (keys in ascending order, no whitespace, strings without escapes, integers under
    /// 10^15 without a sign on zero): then they are the canonical text as they stand, and
    /// nothing is parsed or rewritten. Otherwise nil, and nothing is consumed.
    mutating func canonicalObject() -> [UInt8]? {
        skipWhitespace()
        let start = i
        guard peek == 0x7B, canonical(depth: 0) else { i = start; return nil }
        return [UInt8](UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
    }

    private mutating func canonical(depth: Int) -> Bool {
        guard depth < 64, let c = peek else { return false }
        switch c {
        case 0x7B:
            i += 1
            if peek == 0x7D { i += 1; return true }
            var previous: UnsafeRawBufferPointer?
            while true {
                guard peek == 0x22, let key = canonicalString() else { return false }
                // Keys strictly ascending; for ASCII, byte order is String order.
                if let previous {
                    let n = min(previous.count, key.count)
                    let order = memcmp(previous.baseAddress!, key.baseAddress!, n)
                    guard order < 0 || (order == 0 && previous.count < key.count) else { return false }
                }
                guard key.allSatisfy({ $0 < 0x80 }) else { return false }
                previous = key
                guard peek == 0x3A else { return false }
                i += 1
                guard canonical(depth: depth + 1), let next = peek else { return false }
                i += 1
                if next == 0x7D { return true }
                guard next == 0x2C else { return false }
            }
        case 0x5B:
            i += 1
            if peek == 0x5D { i += 1; return true }
            while true {
                guard canonical(depth: depth + 1), let next = peek else { return false }
                i += 1
                if next == 0x5D { return true }
                guard next == 0x2C else { return false }
            }
        case 0x22:
            return canonicalString() != nil
        case 0x74: return (try? literal("true")) != nil
        case 0x66: return (try? literal("false")) != nil
        case 0x6E: return (try? literal("null")) != nil
        default:
            // An integer as `JSONWriter.int` writes it: 0, or up to 15 digits without a leading zero.
            let start = i
            if peek == 0x2D { i += 1 }
            let first = i
            digits()
            let count = i - first
            guard count >= 1, count <= 15 else { return false }
            if bytes[first] == 0x30 && (count > 1 || first > start) { return false }
            if let next = peek, next == 0x2E || next == 0x65 || next == 0x45 { return false }
            return true
        }
    }

    /// A string with no escapes and no control bytes, valid UTF-8: written back the same.
    private mutating func canonicalString() -> UnsafeRawBufferPointer? {
        i += 1
        guard case .plain(let raw, let ascii) = scanPlain(from: i) else { return nil }
        if !ascii, String(validating: raw, as: UTF8.self) == nil { return nil }
        return raw
    }

    /// A `String?` member: null is nil.
    mutating func optionalString() throws(GiveUp) -> String? {
        try null() ? nil : try string()
    }

    mutating func optionalInt() throws(GiveUp) -> Int? {
        try null() ? nil : try int()
    }

    mutating func date() throws(GiveUp) -> Date {
        Date(timeIntervalSince1970: try double())
    }

    mutating func optionalDate() throws(GiveUp) -> Date? {
        try null() ? nil : try date()
    }

    /// A string-backed enum by its raw value.
    mutating func raw<E: RawRepresentable>(_ type: E.Type) throws(GiveUp) -> E where E.RawValue == String {
        guard let value = E(rawValue: try string()) else { throw GiveUp() }
        return value
    }
}

/// The keys a reader has seen, so a repeated one gives up (JSONDecoder's choice between
/// two values is its own).
struct SeenKeys {
    private var bits: UInt32 = 0
    mutating func first(_ index: Int) throws(JSONReader.GiveUp) {
        let bit = UInt32(1) << UInt32(index)
        guard bits & bit == 0 else { throw JSONReader.GiveUp() }
        bits |= bit
    }
    func has(_ index: Int) -> Bool { bits & (UInt32(1) << UInt32(index)) != 0 }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes spell `key`.
    @inline(__always) func `is`(_ key: StaticString) -> Bool {
        count == key.utf8CodeUnitCount && memcmp(baseAddress!, key.utf8Start, count) == 0
    }
}

// MARK: - The shapes

extension JSONReader {
    static func callbackBody(_ bytes: UnsafeRawBufferPointer) -> Callbacks.Body? {
        read(bytes) { r throws(GiveUp) in try r.callbackBody() }
    }

    static func journalRecord(_ bytes: UnsafeRawBufferPointer) -> JournalRecord? {
        read(bytes) { r throws(GiveUp) in try r.journalRecord() }
    }

    mutating func baseResp() throws(GiveUp) -> BaseResp {
        var code: Int?, message: String?
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("status_code") { try seen.first(0); code = try r.int() }
            else if key.is("status_msg") { try seen.first(1); message = try r.string() }
            else { try r.skip(depth: 1) }
        }
        guard let code, let message else { throw GiveUp() }
        return BaseResp(code, message)
    }

    mutating func optionalBaseResp() throws(GiveUp) -> BaseResp? {
        try null() ? nil : try baseResp()
    }

    /// `LenientString`: a string, or an integer written as its digits.
    mutating func lenientString() throws(GiveUp) -> LenientString? {
        if try null() { return nil }
        skipWhitespace()
        if peek == 0x22 { return LenientString(try string()) }
        return LenientString(String(try int()))
    }

    /// `POST /v1/callbacks/{token}`'s body.
    mutating func callbackBody() throws(GiveUp) -> Callbacks.Body {
        var body = Callbacks.Body()
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("challenge") { try seen.first(0); body.challenge = try r.optionalString() }
            else if key.is("task_id") { try seen.first(1); body.task_id = try r.lenientString() }
            else if key.is("status") { try seen.first(2); body.status = try r.optionalString() }
            else if key.is("file_id") { try seen.first(3); body.file_id = try r.lenientString() }
            else if key.is("base_resp") { try seen.first(4); body.base_resp = try r.optionalBaseResp() }
            else { try r.skip(depth: 1) }
        }
        return body
    }

    mutating func statusUpdate() throws(GiveUp) -> StatusUpdate {
        var taskID: String?, status: TaskStatus?, fileID: String?, baseResp: BaseResp?
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("taskID") { try seen.first(0); taskID = try r.string() }
            else if key.is("status") { try seen.first(1); status = try r.raw(TaskStatus.self) }
            else if key.is("fileID") { try seen.first(2); fileID = try r.optionalString() }
            else if key.is("baseResp") { try seen.first(3); baseResp = try r.optionalBaseResp() }
            else { try r.skip(depth: 1) }
        }
        guard let taskID, let status else { throw GiveUp() }
        return StatusUpdate(taskID: taskID, status: status, fileID: fileID, baseResp: baseResp)
    }

    mutating func event() throws(GiveUp) -> TaskEvent {
        var status: TaskStatus?, at: Date?, via: TaskEvent.Via?, applied: Bool?, reason: TaskEvent.Reason?
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("status") { try seen.first(0); status = try r.raw(TaskStatus.self) }
            else if key.is("at") { try seen.first(1); at = try r.date() }
            else if key.is("via") { try seen.first(2); via = try r.raw(TaskEvent.Via.self) }
            else if key.is("applied") { try seen.first(3); applied = try r.bool() }
            else if key.is("reason") { try seen.first(4); reason = try r.null() ? nil : try r.raw(TaskEvent.Reason.self) }
            else { try r.skip(depth: 2) }
        }
        guard let status, let at, let via, let applied else { throw GiveUp() }
        return TaskEvent(status: status, at: at, via: via, applied: applied, reason: reason)
    }

    mutating func relayStatus() throws(GiveUp) -> RelayStatus {
        var relay = RelayStatus()
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("attempts") { try seen.first(0); relay.attempts = try r.int() }
            else if key.is("delivered") { try seen.first(1); relay.delivered = try r.int() }
            else if key.is("failed") { try seen.first(2); relay.failed = try r.int() }
            else if key.is("last_status") { try seen.first(3); relay.last_status = try r.optionalInt() }
            else if key.is("last_error") { try seen.first(4); relay.last_error = try r.optionalString() }
            else if key.is("last_attempt_at") { try seen.first(5); relay.last_attempt_at = try r.optionalDate() }
            else { try r.skip(depth: 2) }
        }
        guard seen.has(0), seen.has(1), seen.has(2) else { throw GiveUp() }
        return relay
    }

    /// `VideoTask` as its synthesized `Codable` writes it.
    mutating func videoTask() throws(GiveUp) -> VideoTask {
        var taskID: String?, status: TaskStatus?, source: VideoTask.Source?, requestJSON: [UInt8]?
        var createdAt: Date?, updatedAt: Date?, events: [TaskEvent]?
        var notifyURL: String?, fileID: String?, downloadURL: String?, expires: Date?
        var width: Int?, height: Int?, error: BaseResp?, relay: RelayStatus?
        var seen = SeenKeys()
        try object { key, r throws(GiveUp) in
            if key.is("taskID") { try seen.first(0); taskID = try r.string() }
            else if key.is("status") { try seen.first(1); status = try r.raw(TaskStatus.self) }
            else if key.is("source") { try seen.first(2); source = try r.raw(VideoTask.Source.self) }
            else if key.is("request") {
                try seen.first(3)
                if let text = r.canonicalObject() {
                    requestJSON = text
                } else {
                    guard case .object(let fields) = try r.value(depth: 1) else { throw GiveUp() }
                    requestJSON = JSONWriter.json(.object(fields))
                }
            }
            else if key.is("createdAt") { try seen.first(4); createdAt = try r.date() }
            else if key.is("updatedAt") { try seen.first(5); updatedAt = try r.date() }
            else if key.is("events") {
                try seen.first(6)
                var list: [TaskEvent] = []
                try r.array { r throws(GiveUp) in list.append(try r.event()) }
                events = list
            }
            else if key.is("notifyURL") { try seen.first(7); notifyURL = try r.optionalString() }
            else if key.is("fileID") { try seen.first(8); fileID = try r.optionalString() }
            else if key.is("downloadURL") { try seen.first(9); downloadURL = try r.optionalString() }
            else if key.is("downloadURLExpiresAt") { try seen.first(10); expires = try r.optionalDate() }
            else if key.is("videoWidth") { try seen.first(11); width = try r.optionalInt() }
            else if key.is("videoHeight") { try seen.first(12); height = try r.optionalInt() }
            else if key.is("error") { try seen.first(13); error = try r.optionalBaseResp() }
            else if key.is("relay") { try seen.first(14); relay = try r.null() ? nil : try r.relayStatus() }
            else { try r.skip(depth: 1) }
        }
        guard let taskID, let status, let source, let requestJSON, let createdAt, let updatedAt, let events else { throw GiveUp() }
        var task = VideoTask(taskID: taskID, source: source, requestJSON: requestJSON, notifyURL: notifyURL, createdAt: createdAt)
        task.status = status
        task.updatedAt = updatedAt
        task.events = events
        task.fileID = fileID
        task.downloadURL = downloadURL
        task.downloadURLExpiresAt = expires
        task.videoWidth = width
        task.videoHeight = height
        task.error = error
        task.relay = relay
        return task
    }

    /// The journal's `task` and `callback` records (the others are rare: nil, for JSONDecoder).
    mutating func journalRecord() throws(GiveUp) -> JournalRecord {
        var record: JournalRecord?
        try object { key, r throws(GiveUp) in
            guard record == nil else { throw GiveUp() }  // an enum is one key
            if key.is("task") {
                var task: VideoTask?, token: String?
                var seen = SeenKeys()
                try r.object { key, r throws(GiveUp) in
                    if key.is("_0") { try seen.first(0); task = try r.videoTask() }
                    else if key.is("token") { try seen.first(1); token = try r.optionalString() }
                    else { try r.skip(depth: 1) }
                }
                guard let task else { throw GiveUp() }
                record = .task(task, token: token)
            } else if key.is("callback") {
                var token: String?, update: StatusUpdate?, at: Date?
                var seen = SeenKeys()
                try r.object { key, r throws(GiveUp) in
                    if key.is("token") { try seen.first(0); token = try r.string() }
                    else if key.is("update") { try seen.first(1); update = try r.statusUpdate() }
                    else if key.is("at") { try seen.first(2); at = try r.date() }
                    else { try r.skip(depth: 1) }
                }
                guard let token, let update, let at else { throw GiveUp() }
                record = .callback(token: token, update: update, at: at)
            } else {
                throw GiveUp()
            }
        }
        guard let record else { throw GiveUp() }
        return record
    }
}

/// For the fuzzer and the tests: whether the in-place readers agree with JSONDecoder on
/// `bytes`. They may give up where JSONDecoder reads; they must never read what it
/// refuses, nor read anything differently. Each answers the difference, or nil.
public enum JSONReaderCheck {
    static func fastCallbackBody(_ bytes: [UInt8]) -> Callbacks.Body? { bytes.withUnsafeBytes(JSONReader.callbackBody) }
    static func fastJournalRecord(_ bytes: [UInt8]) -> JournalRecord? { bytes.withUnsafeBytes(JSONReader.journalRecord) }

    public static func callbackBody(_ bytes: [UInt8]) -> String? {
        guard let fast = fastCallbackBody(bytes) else { return nil }
        guard let slow = try? Callbacks.decoder.decode(Callbacks.Body.self, from: Data(bytes)) else {
            return "the reader read \(fast); JSONDecoder refuses it"
        }
        return fast == slow ? nil : "the reader read \(fast); JSONDecoder \(slow)"
    }

    public static func journalRecord(_ bytes: [UInt8]) -> String? {
        guard let fast = fastJournalRecord(bytes) else { return nil }
        guard let slow = try? Journal.decoder.decode(JournalRecord.self, from: Data(bytes)) else {
            return "the reader read \(fast); JSONDecoder refuses it"
        }
        return fast == slow ? nil : "the reader read \(fast); JSONDecoder \(slow)"
    }

    /// Whether the reader reads these bytes itself (rather than leaving them to JSONDecoder).
    public static func readsCallbackBody(_ bytes: [UInt8]) -> Bool { fastCallbackBody(bytes) != nil }
    public static func readsJournalRecord(_ bytes: [UInt8]) -> Bool { fastJournalRecord(bytes) != nil }
}
