import Foundation
import HailuoHook
import Testing

/// The submit rules, each at its boundary.
@Suite struct VideoRequestTests {
    func check(_ fields: [String: JSONValue]) -> ValidationError? {
        do {
            try VideoRequest(fields: fields).validate()
            return nil
        } catch {
            return error
        }
    }

    func body(_ model: String = "MiniMax-Hailuo-02", prompt: String? = "a cat", _ extra: [String: JSONValue] = [:]) -> [String: JSONValue] {
        var f: [String: JSONValue] = ["model": .string(model)]
        if let prompt { f["prompt"] = .string(prompt) }
        return f.merging(extra) { $1 }
    }

    func body(_ extra: [String: JSONValue]) -> [String: JSONValue] { body("MiniMax-Hailuo-02", extra) }

    static let png = "data:image/png;base64," + String(repeating: "A", count: 400)

    @Test func seedExampleIsValid() {
        #expect(check(body(prompt: "A man picks up a book [Pedestal up], then reads [Static shot].",
                           ["duration": .number(6), "resolution": .string("1080P")])) == nil)
    }

    @Test func promptBoundary() {
        #expect(check(body(prompt: String(repeating: "a", count: 2000))) == nil)
        let e = check(body(prompt: String(repeating: "a", count: 2001)))
        #expect(e?.field == "prompt")
        #expect(e?.message.contains("2001") == true)
        // Code points, not bytes: 2000 CJK characters are 6000 bytes and still fine.
        #expect(check(body(prompt: String(repeating: "书", count: 2000))) == nil)
        #expect(check(body(prompt: String(repeating: "书", count: 2001)))?.field == "prompt")
    }

    @Test(arguments: ["MiniMax-Hailuo-2.3", "MiniMax-Hailuo-02"])
    func hailuoDurationsByResolution(model: String) {
        #expect(check(body(model, ["duration": .number(6), "resolution": .string("768P")])) == nil)
        #expect(check(body(model, ["duration": .number(10), "resolution": .string("768P")])) == nil)
        #expect(check(body(model, ["duration": .number(6), "resolution": .string("1080P")])) == nil)
        #expect(check(body(model, ["duration": .number(10), "resolution": .string("1080P")]))?.field == "duration")
        #expect(check(body(model, ["duration": .number(8)]))?.field == "duration")
        #expect(check(body(model, ["resolution": .string("720P")]))?.field == "resolution")
        // 512P only with a first frame, where 10 s is allowed too.
        #expect(check(body(model, ["resolution": .string("512P")]))?.field == "resolution")
        #expect(check(body(model, ["resolution": .string("512P"), "duration": .number(10), "first_frame_image": .string(Self.png)])) == nil)
        #expect(check(body(model, ["resolution": .string("1080P"), "duration": .number(10), "first_frame_image": .string(Self.png)]))?.field == "duration")
    }

    @Test(arguments: ["T2V-01", "T2V-01-Director"])
    func classicTextModels(model: String) {
        #expect(check(body(model, ["duration": .number(6), "resolution": .string("720P")])) == nil)
        #expect(check(body(model, ["duration": .number(10)]))?.field == "duration")
        #expect(check(body(model, ["resolution": .string("768P")]))?.field == "resolution")
        #expect(check(body(model, ["first_frame_image": .string(Self.png)]))?.field == "first_frame_image")
    }

    @Test(arguments: ["I2V-01", "I2V-01-Director", "I2V-01-live"])
    func classicImageModelsNeedAFirstFrame(model: String) {
        #expect(check(body(model))?.field == "first_frame_image")
        #expect(check(body(model, ["first_frame_image": .string("https://example.com/a.jpg")])) == nil)
    }

    @Test func subjectReference() {
        let subject: JSONValue = .array([.object(["type": .string("character"), "image": .array([.string(Self.png)])])])
        #expect(check(body("S2V-01", ["subject_reference": subject])) == nil)
        #expect(check(body("S2V-01"))?.field == "subject_reference")
        #expect(check(body("MiniMax-Hailuo-02", ["subject_reference": subject]))?.field == "subject_reference")
        let twoImages: JSONValue = .array([.object(["type": .string("character"), "image": .array([.string(Self.png), .string(Self.png)])])])
        #expect(check(body("S2V-01", ["subject_reference": twoImages]))?.field == "subject_reference[0].image")
    }

    @Test func modelIsRequiredAndKnown() {
        #expect(check(["prompt": .string("x")])?.field == "model")
        #expect(check(body("Hailuo-9000"))?.field == "model")
        #expect(check(["model": .number(2)])?.field == "model")
    }

    @Test func promptOrFirstFrame() {
        #expect(check(body(prompt: nil))?.field == "prompt")
        #expect(check(body(prompt: nil, ["first_frame_image": .string(Self.png)])) == nil)
    }

    @Test func images() {
        #expect(check(body(["first_frame_image": .string("ftp://x/y.png")]))?.field == "first_frame_image")
        #expect(check(body(["first_frame_image": .string("data:image/gif;base64,AAAA")]))?.message.contains("image/gif") == true)
        #expect(check(body(["first_frame_image": .string("data:image/png,AAAA")]))?.field == "first_frame_image")
        // 20 MB decoded is too much; just under is fine.
        let under = "data:image/jpeg;base64," + String(repeating: "A", count: (20_000_000 / 3) * 4 - 4)
        let over = "data:image/jpeg;base64," + String(repeating: "A", count: (20_000_000 / 3 + 1) * 4)
        #expect(check(body(["first_frame_image": .string(under)])) == nil)
        #expect(check(body(["first_frame_image": .string(over)]))?.message.contains("20 MB") == true)
    }

    @Test func lastFrameRules() {
        let both = ["first_frame_image": JSONValue.string(Self.png), "last_frame_image": .string(Self.png)]
        #expect(check(body("MiniMax-Hailuo-02", both)) == nil)
        #expect(check(body("MiniMax-Hailuo-2.3", both))?.field == "last_frame_image")
        #expect(check(body("MiniMax-Hailuo-02", ["last_frame_image": .string(Self.png)]))?.field == "last_frame_image")
    }

    @Test func flagsAndCallbackURL() {
        #expect(check(body(["prompt_optimizer": .string("yes")]))?.field == "prompt_optimizer")
        #expect(check(body(["aigc_watermark": .bool(true), "prompt_optimizer": .bool(false)])) == nil)
        #expect(check(body("T2V-01", ["fast_pretreatment": .bool(true)]))?.field == "fast_pretreatment")
        #expect(check(body(["callback_url": .string("not a url")]))?.field == "callback_url")
    }

    @Test func unknownFieldsPassThroughAndImagesAreSummarised() throws {
        let request = try VideoRequest.parse(Array(#"{"model":"MiniMax-Hailuo-02","prompt":"p","new_field":{"a":1},"callback_url":"https://me.example/hook","first_frame_image":"\#(Self.png)"}"#.utf8))
        let upstream = request.upstreamBody(callbackURL: "https://hook.example/v1/callbacks/abc")
        #expect(upstream["new_field"] == .object(["a": .number(1)]))
        #expect(upstream["callback_url"] == .string("https://hook.example/v1/callbacks/abc"))
        #expect(request.notifyURL == "https://me.example/hook")
        #expect(request.recorded["callback_url"] == nil)
        #expect(request.recorded["new_field"] != nil)
        #expect(request.recorded["first_frame_image"] == .string("data:image/png;base64,… (1 KiB)"))
    }

    @Test func badJSON() {
        #expect(throws: ValidationError.self) { try VideoRequest.parse(Array("{".utf8)) }
        #expect(throws: ValidationError.self) { try VideoRequest.parse(Array("[1]".utf8)) }
    }
}
