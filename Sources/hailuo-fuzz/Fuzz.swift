// The fuzz target: built with `swift build --sanitize=fuzzer --sanitize=address
// -Xswiftc -DFUZZING --product hailuo-fuzz` it is a libFuzzer binary
// (Tests/fuzz/run.sh). Built normally it replays inputs: `hailuo-fuzz FILE...`
// runs each file through the same checks (the seed corpus, a crash to debug).
//
// The first byte of an input picks what is fuzzed; the rest is the data:
//   0  the request parser: the bytes parsed whole and again in pieces (cut
//      where the input's own bytes say), and the two runs must agree exactly
//      (heads, bodies, trailers, the error) — a differential check on the
//      resumable state machine, not only "no crash";
//   1  the chunked decoder: the data as a chunked body after a fixed head, same check;
//   2  the callback path: the data as the JSON body of POST /v1/callbacks/tok0,
//      through the real handler, registry and state machine; the answer must
//      be one of 200/400/404/409 and the task must still be there. And the
//      in-place JSON readers against JSONDecoder on the same bytes, as a callback
//      body and as a journal record: whatever they read, JSONDecoder reads the same.
import Foundation
import HailuoHook
import HTTPServer

enum Fuzz {
    static let limits = RequestParser.Limits(maxHeaderBytes: 4096, maxURIBytes: 1024, maxChunkExtensionBytes: 256)
    static let bodyLimit = 64 * 1024
    static let registry: TaskRegistry = {
        let registry = TaskRegistry(maxTasks: 1000)
        registry.seedBenchmarkTasks(4)
        return registry
    }()
    static let callbacks = Callbacks(registry: registry, sharedToken: nil)

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let mode = input.first else { return }
        let data = Array(input.dropFirst())
        switch mode % 3 {
        case 0: differential(data, cuts: data)
        case 1:
            let head = Array("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            differential(head + data, cuts: data)
        default: callback(data)
        }
    }

    /// Everything one parser run produced, as comparable text.
    static func transcript(_ pieces: [ArraySlice<UInt8>]) -> [String] {
        var parser = RequestParser(limits: limits)
        var out: [String] = []
        for piece in pieces {
            piece.withUnsafeBytes { parser.append($0) }
            while true {
                do {
                    guard let output = try parser.next() else { break }
                    switch output {
                    case .head(let head):
                        out.append("head \(head.method) \(head.target) \(head.version) \(head.framing) keepAlive=\(head.keepAlive) continue=\(head.expectsContinue) \(head.headers.map { "\($0.0)=\($0.1)" })")
                        if head.framing != .none { parser.bodyLimit = bodyLimit }
                    case .body(let body, let trailers):
                        precondition(body.count <= bodyLimit, "a body over the limit was delivered")
                        out.append("body \(body.count) \(body.hashValue) \(trailers.map { "\($0.0)=\($0.1)" })")
                    }
                } catch {
                    out.append("error \(error.status.code) \(error.message)")
                    return out
                }
            }
        }
        return out
    }

    static func differential(_ bytes: [UInt8], cuts: [UInt8]) {
        let whole = transcript([bytes[...]])
        var pieces: [ArraySlice<UInt8>] = []
        var start = 0
        var i = 0
        while start < bytes.count {
            let step = cuts.isEmpty ? 1 : Int(cuts[i % cuts.count] % 17) + 1
            i += 1
            let end = min(bytes.count, start + step)
            pieces.append(bytes[start..<end])
            start = end
        }
        let split = transcript(pieces)
        // Fed in pieces the parser may stop earlier only by waiting for more; what it produced must match.
        if whole != split {
            fatalError("the parser disagrees with itself:\nwhole: \(whole)\nsplit: \(split)")
        }
    }

    static func callback(_ body: [UInt8]) {
        if let difference = JSONReaderCheck.callbackBody(body) ?? JSONReaderCheck.journalRecord(body) {
            fatalError("the JSON reader disagrees with JSONDecoder: \(difference)")
        }
        let head = Array("POST /v1/callbacks/tok0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        var parser = RequestParser(limits: limits)
        (head + body).withUnsafeBytes { parser.append($0) }
        guard case .head(let requestHead)? = try? parser.next() else { fatalError("the fixed head did not parse") }
        var request = Request(head: requestHead, body: body, parameters: ["token": "tok0"])
        request.id = "fuzz"
        let response = callbacks.handle(request)
        guard [200, 400, 404, 409].contains(response.status.code) else {
            fatalError("callback answered \(response.status.code)")
        }
        guard registry.task("T0") != nil else { fatalError("the task disappeared") }
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    Fuzz.run(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}
#else
/// Replay: each file given (or every file in a folder) through the same checks.
@main struct Replay {
    static func main() {
        var files: [String] = []
        for argument in CommandLine.arguments.dropFirst() {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: argument, isDirectory: &isFolder), isFolder.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []
                files += names.sorted().map { argument + "/" + $0 }
            } else {
                files.append(argument)
            }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { fatalError("cannot read \(file)") }
            data.withUnsafeBytes { Fuzz.run($0) }
        }
        print("hailuo-fuzz: replayed \(files.count) inputs, no failure")
    }
}
#endif
