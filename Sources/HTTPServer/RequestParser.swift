import Glibc

/// Incremental, strict HTTP/1.1 request parser (RFC 9112). Bytes go in with
/// `append`, complete heads and bodies come out of `next()`; a request may
/// arrive one byte at a time. It does no I/O. The head is scanned once for its
/// end (resuming where the last call stopped) and then parsed in one pass.
public struct RequestParser {
    public struct Limits: Sendable {
        public var maxHeaderBytes: Int
        public var maxURIBytes: Int
        public var maxChunkExtensionBytes: Int

        public init(maxHeaderBytes: Int = 16384, maxURIBytes: Int = 8192, maxChunkExtensionBytes: Int = 4096) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxURIBytes = maxURIBytes
            self.maxChunkExtensionBytes = maxChunkExtensionBytes
        }
    }

    public enum Output: Sendable {
        case head(RequestHead)
        case body([UInt8], trailers: Headers)
    }

    enum ChunkState: Equatable {
        case size(value: Int, digits: Int, afterWhitespace: Bool)
        case extensions(length: Int)
        case sizeLF(size: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        case trailers
    }

    enum State: Equatable {
        case head
        case lengthBody(Int)
        case chunked(ChunkState)
        case failed
    }

    public let limits: Limits
    /// The largest body accepted for the current request; set after a head is returned.
    public var bodyLimit: Int = Int.max

    private var buffer: [UInt8] = []
    private var start = 0
    private var state: State = .head
    // Head scanning, kept across calls so no byte is scanned twice.
    private var scanIndex = 0
    private var lineStart = 0
    private var requestLineEnd = -1
    // Body being assembled.
    private var body: [UInt8] = []
    private var trailers = Headers()
    private var trailerBytes = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes received and not yet consumed.
    public var bufferedByteCount: Int { buffer.count - start }

    /// True between requests with nothing of the next one received.
    public var isIdle: Bool { state == .head && start == buffer.count }

    /// True while a body is being read.
    public var isReadingBody: Bool {
        switch state {
        case .lengthBody, .chunked: return true
        default: return false
        }
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compactIfUseful()
        buffer.append(contentsOf: bytes)
    }

    /// Drops consumed bytes once they are the larger part of the buffer.
    private mutating func compactIfUseful() {
        if start == buffer.count {
            if buffer.capacity > 1 << 20 { buffer = [] } else { buffer.removeAll(keepingCapacity: true) }
            scanIndex -= start; lineStart -= start
            if requestLineEnd >= 0 { requestLineEnd -= start }
            start = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            scanIndex -= start; lineStart -= start
            if requestLineEnd >= 0 { requestLineEnd -= start }
            start = 0
        }
    }

    /// The next complete head or body, nil when more bytes are needed.
    public mutating func next() throws(ParseError) -> Output? {
        do {
            switch state {
            case .head: return try nextHead()
            case .lengthBody(let length): return nextLengthBody(length)
            case .chunked: return try nextChunked()
            case .failed: return nil
            }
        } catch {
            state = .failed
            throw error
        }
    }

    // MARK: Head

    private mutating func resetHeadScan() {
        scanIndex = start
        lineStart = start
        requestLineEnd = -1
    }

    private mutating func nextHead() throws(ParseError) -> Output? {
        if scanIndex == start && lineStart == start {
            // RFC 9112 §2.2: ignore empty lines before the request line.
            var skipped = start
            while skipped < buffer.count {
                if buffer[skipped] == lf { skipped += 1; continue }
                if buffer[skipped] == cr && skipped + 1 < buffer.count && buffer[skipped + 1] == lf { skipped += 2; continue }
                break
            }
            if skipped != start { start = skipped; resetHeadScan() }
            // A CR that may be the first half of one more empty line: wait for its LF.
            if start == buffer.count - 1 && buffer[start] == cr { return nil }
        }
        guard let headEnd = try scanForHeadEnd() else { return nil }
        let head = try buffer.withUnsafeBufferPointer { p throws(ParseError) in
            try parseHead(p, from: start, requestLineEnd: requestLineEnd, to: headEnd)
        }
        start = headEnd
        resetHeadScan()
        body = []
        trailers = Headers()
        trailerBytes = 0
        bodyLimit = Int.max
        // A head with a body (even an empty one) is always followed by a `.body` output.
        switch head.framing {
        case .none: state = .head
        case .length(let n): state = .lengthBody(n)
        case .chunked: state = .chunked(.size(value: 0, digits: 0, afterWhitespace: false))
        }
        return .head(head)
    }

    /// Finds the index just past the blank line ending the head, or nil.
    private mutating func scanForHeadEnd() throws(ParseError) -> Int? {
        let count = buffer.count
        let limits = self.limits
        var scan = scanIndex, lineStart = self.lineStart, requestLineEnd = self.requestLineEnd
        let result: Int? = buffer.withUnsafeBufferPointer { p in
            var i = scan
            while i < count {
                guard let found = memchr(p.baseAddress! + i, Int32(lf), count - i) else {
                    i = count
                    break
                }
                let at = UnsafeRawPointer(found).assumingMemoryBound(to: UInt8.self) - p.baseAddress!
                let length = at - lineStart
                if requestLineEnd < 0 {
                    requestLineEnd = at
                } else if length == 0 || (length == 1 && p[lineStart] == cr) {
                    scan = at + 1
                    return at + 1
                }
                lineStart = at + 1
                i = at + 1
            }
            scan = i
            return nil
        }
        self.scanIndex = scan
        self.lineStart = lineStart
        self.requestLineEnd = requestLineEnd
        // A request line too long to be valid is refused as soon as that is known, whether it
        // has ended (and the head with it) or not: the same checks, in the same order, as a
        // whole line (the fuzzer holds the two equal), then 414 for a long target.
        let seen = requestLineEnd >= 0 ? requestLineEnd : count
        if seen - start > limits.maxURIBytes + 64 {
            // A CR at the end of an unfinished line may or may not be the first half of its
            // CRLF: judge what comes before it (the checks go left to right, so a fault there is
            // final), and leave the rest for when the next byte says which.
            let endsWithCR = buffer[seen - 1] == cr
            _ = try buffer.withUnsafeBufferPointer { p throws(ParseError) in try parseRequestLine(p, start, endsWithCR ? seen - 1 : seen) }
            if endsWithCR && requestLineEnd < 0 { return nil }
            throw ParseError(.uriTooLong, "the request target is longer than \(limits.maxURIBytes) bytes")
        }
        if let result {
            if requestLineEnd >= 0 && result - (requestLineEnd + 1) > limits.maxHeaderBytes {
                throw ParseError(.headerFieldsTooLarge, "the header section is larger than \(limits.maxHeaderBytes) bytes")
            }
            return result
        }
        if requestLineEnd >= 0 && count - (requestLineEnd + 1) > limits.maxHeaderBytes + 2 {
            throw ParseError(.headerFieldsTooLarge, "the header section is larger than \(limits.maxHeaderBytes) bytes")
        }
        return nil
    }

    private func parseHead(_ p: UnsafeBufferPointer<UInt8>, from s: Int, requestLineEnd rl: Int, to end: Int) throws(ParseError) -> RequestHead {
        // Request line: method SP target SP version CRLF.
        let lineEnd = rl > s && p[rl - 1] == cr ? rl - 1 : rl
        let (method, target, version) = try parseRequestLine(p, s, lineEnd)
        guard lineEnd == rl - 1 else { throw .bad("the request line must end with CRLF") }

        // Header fields.
        var headers = Headers()
        var contentLength: Int? = nil
        var codings: [String] = []
        var hostCount = 0
        var close = false
        var keepAlive = false
        var expectsContinue = false
        var line = rl + 1
        while line < end {
            let lfAt = indexOfLF(p, line, end)
            if lfAt == line || (lfAt == line + 1 && p[line] == cr) { break }  // the blank line
            guard p[lfAt - 1] == cr else { throw .bad("header lines must end with CRLF (bare LF)") }
            let field = try parseField(p, line, lfAt - 1)
            let nameLen = field.nameEnd - line
            if nameLen == 14 && equalsLower(p, line, "content-length") {
                let value = try parseContentLength(field.value)
                // Even identical repeats are refused (RFC 9110 §8.6 allows either): a proxy
                // in front may have read them differently, which is how smuggling starts.
                if let existing = contentLength {
                    throw .bad(existing == value ? "Content-Length is repeated" : "differing Content-Length values")
                }
                contentLength = value
            } else if nameLen == 17 && equalsLower(p, line, "transfer-encoding") {
                for coding in field.value.split(separator: ",") {
                    let c = coding.trimmingOWS().lowercased()
                    if !c.isEmpty { codings.append(c) }
                }
            } else if nameLen == 4 && equalsLower(p, line, "host") {
                hostCount += 1
            } else if nameLen == 10 && equalsLower(p, line, "connection") {
                for option in field.value.split(separator: ",") {
                    let o = option.trimmingOWS().lowercased()
                    if o == "close" { close = true } else if o == "keep-alive" { keepAlive = true }
                }
            } else if nameLen == 6 && equalsLower(p, line, "expect") && version == .http1_1 {
                if field.value.lowercased() == "100-continue" {
                    expectsContinue = true
                } else {
                    throw ParseError(.expectationFailed, "Expect: \(field.value) is not supported; only 100-continue is")
                }
            }
            headers.add(field.name, field.value)
            line = lfAt + 1
        }

        if version == .http1_1 && hostCount == 0 { throw .bad("missing Host header (required in HTTP/1.1)") }
        if hostCount > 1 { throw .bad("more than one Host header") }

        var framing = BodyFraming.none
        if !codings.isEmpty {
            if contentLength != nil { throw .bad("both Content-Length and Transfer-Encoding are present") }
            let chunkedCount = codings.filter { $0 == "chunked" }.count
            if codings.last != "chunked" {
                if chunkedCount > 0 { throw .bad("Transfer-Encoding: chunked must be the last coding") }
                throw ParseError(.notImplemented, "Transfer-Encoding \(codings.last!) is not supported")
            }
            if chunkedCount > 1 { throw .bad("Transfer-Encoding: chunked is applied more than once") }
            if let other = codings.first(where: { $0 != "chunked" }) {
                throw ParseError(.notImplemented, "Transfer-Encoding \(other) is not supported")
            }
            framing = .chunked
        } else if let contentLength {
            framing = .length(contentLength)
        } else if method == "POST" || method == "PUT" || method == "PATCH" {
            throw ParseError(.lengthRequired, "a \(method) needs Content-Length or Transfer-Encoding: chunked")
        }
        let persistent = version == .http1_1 ? !close : (keepAlive && !close)
        return RequestHead(
            method: method, target: target, version: version, headers: headers,
            framing: framing, keepAlive: persistent, expectsContinue: expectsContinue && framing != .none
        )
    }

    /// Method, target and version of the request line in `s..<lineEnd` (its CRLF excluded).
    private func parseRequestLine(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ lineEnd: Int) throws(ParseError) -> (String, String, HTTPVersion) {
        var i = s
        while i < lineEnd && isTokenChar(p[i]) && i - s <= 32 { i += 1 }
        guard i > s, i < lineEnd, p[i] == sp else {
            if i < lineEnd && p[i] == cr { throw .bad("bare CR in the request line") }
            throw .bad("malformed request line: the method must be a token followed by one space")
        }
        let method = string(p, s, i)
        let targetStart = i + 1
        var j = targetStart
        while j < lineEnd && p[j] > 0x20 && p[j] < 0x7F { j += 1 }
        if j - targetStart > limits.maxURIBytes {
            throw ParseError(.uriTooLong, "the request target is longer than \(limits.maxURIBytes) bytes")
        }
        guard j > targetStart, j < lineEnd, p[j] == sp else {
            if j < lineEnd && p[j] == cr { throw .bad("bare CR in the request line") }
            throw .bad("malformed request line: the target must be followed by one space and the HTTP version")
        }
        let first = p[targetStart]
        guard first == slash || first == UInt8(ascii: "*") || first == UInt8(ascii: "h") || first == UInt8(ascii: "H") else {
            throw .bad("malformed request target: it must start with '/'")
        }
        let version = try parseVersion(p, j + 1, lineEnd)
        var target = string(p, targetStart, j)
        if first != slash && first != UInt8(ascii: "*") {
            target = try originForm(ofAbsolute: target)
        }
        return (method, target, version)
    }

    private func parseVersion(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) throws(ParseError) -> HTTPVersion {
        // Left to right, judged at the first byte that does not fit `HTTP/d.d`: the same
        // answer whether the rest of the line has arrived or not.
        let prefix: [UInt8] = Array("HTTP/".utf8)
        for k in 0...8 {
            let fits: Bool
            if s + k >= e {
                if k == 8 { break }
                fits = false
            } else if k == 8 {
                fits = false  // anything after the 8 bytes
            } else if k < 5 {
                fits = p[s + k] == prefix[k]
            } else if k == 6 {
                fits = p[s + k] == UInt8(ascii: ".")
            } else {
                fits = isDigit(p[s + k])
            }
            if !fits {
                if s + k < e && p[s + k] == cr { throw .bad("bare CR in the request line") }
                throw .bad("malformed request line: the version must be HTTP/1.1 or HTTP/1.0")
            }
        }
        let major = p[s + 5] - UInt8(ascii: "0"), minor = p[s + 7] - UInt8(ascii: "0")
        guard major == 1 else {
            throw ParseError(.httpVersionNotSupported, "HTTP/\(major).\(minor) is not supported; use HTTP/1.1")
        }
        return minor == 0 ? .http1_0 : .http1_1
    }

    private func originForm(ofAbsolute target: String) throws(ParseError) -> String {
        let lower = target.lowercased()
        guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
            throw .bad("malformed request target: it must start with '/'")
        }
        let afterScheme = target[target.index(target.startIndex, offsetBy: lower.hasPrefix("http://") ? 7 : 8)...]
        guard let slashIndex = afterScheme.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterScheme[slashIndex...]
        return rest.first == "?" ? "/" + rest : String(rest)
    }

    /// One field line `name: value` from `s` up to the CR at `e`.
    private func parseField(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) throws(ParseError) -> (name: String, nameEnd: Int, value: String) {
        if p[s] == sp || p[s] == ht { throw .bad("obsolete line folding in the header section") }
        var i = s
        while i < e && isTokenChar(p[i]) { i += 1 }
        guard i < e, p[i] == colon else {
            if i < e && (p[i] == sp || p[i] == ht) {
                throw .bad("whitespace before the colon in header \(string(p, s, i))")
            }
            if i < e && p[i] == cr { throw .bad("bare CR in the header section") }
            throw .bad("malformed header line: a field name must be a token followed by ':'")
        }
        guard i > s else { throw .bad("malformed header line: empty field name") }
        let nameEnd = i
        var v = i + 1
        while v < e && (p[v] == sp || p[v] == ht) { v += 1 }
        var valueEnd = v
        var k = v
        while k < e {
            let c = p[k]
            if c == cr { throw .bad("bare CR in header \(string(p, s, nameEnd))") }
            if c < 0x20 && c != ht || c == 0x7F {
                throw .bad("invalid character in the value of header \(string(p, s, nameEnd))")
            }
            if c != sp && c != ht { valueEnd = k + 1 }
            k += 1
        }
        return (string(p, s, nameEnd), nameEnd, string(p, v, valueEnd))
    }

    private func parseContentLength(_ value: String) throws(ParseError) -> Int {
        // One plain decimal number, nothing else: no sign, no list ("5, 5"), at most 18 digits.
        if value.utf8.count <= 18, !value.isEmpty, value.utf8.allSatisfy(isDigit), let n = Int(value) { return n }
        if value.contains(",") { throw .bad("Content-Length must be one number, not a list: \(value)") }
        throw .bad("invalid Content-Length: \(value)")
    }

    // MARK: Bodies

    private mutating func nextLengthBody(_ length: Int) -> Output? {
        guard buffer.count - start >= length else { return nil }
        let out = Array(buffer[start..<start + length])
        start += length
        state = .head
        resetHeadScan()
        return .body(out, trailers: Headers())
    }

    private mutating func nextChunked() throws(ParseError) -> Output? {
        guard case .chunked(var cs) = state else { return nil }
        defer { if case .chunked = state { state = .chunked(cs) } }
        while start < buffer.count {
            switch cs {
            case .size(let value, let digits, let afterWhitespace):
                let c = buffer[start]
                if let d = hexValue(c), !afterWhitespace {
                    guard digits < 15 else { throw .bad("bad chunk size: too many digits") }
                    cs = .size(value: value << 4 | d, digits: digits + 1, afterWhitespace: false)
                } else if digits == 0 {
                    throw .bad("bad chunk size: expected a hexadecimal number")
                } else if c == sp || c == ht {
                    cs = .size(value: value, digits: digits, afterWhitespace: true)
                } else if c == UInt8(ascii: ";") {
                    if value > bodyLimit - body.count { throw tooLarge }
                    cs = .extensions(length: 0)
                    pendingChunkSize = value
                } else if c == cr {
                    if value > bodyLimit - body.count { throw tooLarge }
                    cs = .sizeLF(size: value)
                } else {
                    throw .bad("bad chunk size: unexpected character")
                }
                start += 1
            case .extensions(let length):
                let c = buffer[start]
                if c == cr {
                    cs = .sizeLF(size: pendingChunkSize)
                } else if c < 0x20 && c != ht || c == 0x7F {
                    throw .bad("invalid character in a chunk extension")
                } else {
                    guard length < limits.maxChunkExtensionBytes else { throw .bad("chunk extension longer than \(limits.maxChunkExtensionBytes) bytes") }
                    cs = .extensions(length: length + 1)
                }
                start += 1
            case .sizeLF(let size):
                guard buffer[start] == lf else { throw .bad("bad chunk size line: CR not followed by LF") }
                start += 1
                cs = size == 0 ? .trailers : .data(remaining: size)
            case .data(let remaining):
                let take = min(remaining, buffer.count - start)
                body.append(contentsOf: buffer[start..<start + take])
                start += take
                cs = remaining == take ? .dataCR : .data(remaining: remaining - take)
            case .dataCR:
                guard buffer[start] == cr else { throw .bad("chunk data longer than its size") }
                start += 1
                cs = .dataLF
            case .dataLF:
                guard buffer[start] == lf else { throw .bad("chunk data not followed by CRLF") }
                start += 1
                cs = .size(value: 0, digits: 0, afterWhitespace: false)
            case .trailers:
                guard let lfAt = buffer[start...].firstIndex(of: lf) else {
                    if trailerBytes + buffer.count - start > limits.maxHeaderBytes {
                        throw ParseError(.headerFieldsTooLarge, "the trailer section is larger than \(limits.maxHeaderBytes) bytes")
                    }
                    return nil
                }
                trailerBytes += lfAt + 1 - start
                if trailerBytes > limits.maxHeaderBytes {
                    throw ParseError(.headerFieldsTooLarge, "the trailer section is larger than \(limits.maxHeaderBytes) bytes")
                }
                if lfAt == start || (lfAt == start + 1 && buffer[start] == cr) {
                    guard lfAt == start + 1 else { throw .bad("trailer lines must end with CRLF (bare LF)") }
                    start = lfAt + 1
                    state = .head
                    resetHeadScan()
                    let out = body
                    body = []
                    return .body(out, trailers: trailers)
                }
                guard buffer[lfAt - 1] == cr else { throw .bad("trailer lines must end with CRLF (bare LF)") }
                let field = try buffer.withUnsafeBufferPointer { p throws(ParseError) in try parseField(p, start, lfAt - 1) }
                trailers.add(field.name, field.value)
                start = lfAt + 1
            }
        }
        return nil
    }

    private var pendingChunkSize = 0

    private var tooLarge: ParseError {
        ParseError(.payloadTooLarge, "the request body is larger than \(bodyLimit) bytes")
    }
}

// MARK: Byte classes

let cr: UInt8 = 0x0D
let lf: UInt8 = 0x0A
let sp: UInt8 = 0x20
let ht: UInt8 = 0x09
let colon: UInt8 = 0x3A
let slash: UInt8 = 0x2F

/// tchar of RFC 9110 §5.6.2.
private let tokenTable: [Bool] = (0..<256).map { c in
    switch UInt8(c) {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    default:
        return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(c))
    }
}

@inline(__always) func isTokenChar(_ c: UInt8) -> Bool { tokenTable[Int(c)] }
@inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

@inline(__always) func hexValue(_ c: UInt8) -> Int? {
    switch c {
    case 0x30...0x39: return Int(c - 0x30)
    case 0x61...0x66: return Int(c - 0x61 + 10)
    case 0x41...0x46: return Int(c - 0x41 + 10)
    default: return nil
    }
}

@inline(__always) private func string(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> String {
    String(decoding: UnsafeBufferPointer(rebasing: p[s..<e]), as: UTF8.self)
}

private func indexOfLF(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Int {
    guard let found = memchr(p.baseAddress! + s, Int32(lf), e - s) else { return e }
    return UnsafeRawPointer(found).assumingMemoryBound(to: UInt8.self) - p.baseAddress!
}

/// Whether the bytes at `s` equal the lower-case ASCII `name`, ignoring case.
@inline(__always) private func equalsLower(_ p: UnsafeBufferPointer<UInt8>, _ s: Int, _ name: StaticString) -> Bool {
    let n = name.utf8CodeUnitCount
    let q = name.utf8Start
    for k in 0..<n where lowerASCII(p[s + k]) != q[k] { return false }
    return true
}

extension StringProtocol {
    /// Drops leading and trailing spaces and tabs (RFC 9110 OWS).
    func trimmingOWS() -> Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return Substring(s)
    }
}
