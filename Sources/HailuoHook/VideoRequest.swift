import Foundation

/// The submit body (upstream/MINIMAX.md §1) and its rules, as data: a
/// table of models, and per model the resolutions with their durations.
public struct VideoRequest: Sendable {
    /// What a model accepts.
    public struct ModelRule: Sendable {
        public enum Mode: Sendable { case text, image, subject, any }
        /// Resolution → durations, for text-to-video.
        public var textResolutions: [String: [Int]]
        /// Resolution → durations, when a first frame is given.
        public var imageResolutions: [String: [Int]]
        public var defaultResolution: String
        /// `image`: needs `first_frame_image`; `subject`: needs `subject_reference`.
        public var needs: Mode
        public var lastFrame: Bool
        public var fastPretreatment: Bool
    }

    static let hailuo02 = ModelRule(
        textResolutions: ["768P": [6, 10], "1080P": [6]],
        imageResolutions: ["512P": [6, 10], "768P": [6, 10], "1080P": [6]],
        defaultResolution: "768P", needs: .any, lastFrame: true, fastPretreatment: true)
    static let classic = ModelRule(
        textResolutions: ["720P": [6]], imageResolutions: ["720P": [6]],
        defaultResolution: "720P", needs: .any, lastFrame: false, fastPretreatment: false)

    /// Every model the upstream serves (MINIMAX.md §1).
    public static let models: [String: ModelRule] = {
        var hailuo23 = hailuo02
        hailuo23.lastFrame = false
        var t2v = classic
        t2v.needs = .text
        var i2v = classic
        i2v.needs = .image
        var s2v = classic
        s2v.needs = .subject
        return [
            "MiniMax-Hailuo-2.3": hailuo23,
            "MiniMax-Hailuo-02": hailuo02,
            "T2V-01-Director": t2v, "T2V-01": t2v,
            "I2V-01-Director": i2v, "I2V-01-live": i2v, "I2V-01": i2v,
            "S2V-01": s2v,
        ]
    }()

    public static let maxPromptCharacters = 2000
    /// Images must be under 20 MB (decoded).
    public static let maxImageBytes = 20 * 1000 * 1000
    public static let imageTypes = ["jpeg", "jpg", "png", "webp"]

    /// The body as received; unknown fields stay and go upstream unchanged.
    public var fields: [String: JSONValue]

    public init(fields: [String: JSONValue]) {
        self.fields = fields
    }

    /// Parses and checks a submit body; the error names the field.
    public static func parse(_ body: [UInt8]) throws(ValidationError) -> VideoRequest {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw ValidationError(field: nil, "the body is not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw ValidationError(field: nil, "the body must be a JSON object")
        }
        let request = VideoRequest(fields: fields)
        try request.validate()
        return request
    }

    public func validate() throws(ValidationError) {
        guard let modelValue = fields["model"] else { throw ValidationError(field: "model", "model is required") }
        guard let model = modelValue.stringValue else { throw ValidationError(field: "model", "model must be a string") }
        guard let rule = VideoRequest.models[model] else {
            throw ValidationError(field: "model", "model \(model) is not one of \(VideoRequest.models.keys.sorted().joined(separator: ", "))")
        }

        if let prompt = fields["prompt"], prompt != .null {
            guard let text = prompt.stringValue else { throw ValidationError(field: "prompt", "prompt must be a string") }
            let count = text.unicodeScalars.count
            if count > VideoRequest.maxPromptCharacters {
                throw ValidationError(field: "prompt", "prompt has \(count) characters; at most \(VideoRequest.maxPromptCharacters) are allowed")
            }
        }
        let firstFrame = try image("first_frame_image")
        let lastFrame = try image("last_frame_image")
        let hasPrompt = !(fields["prompt"]?.stringValue ?? "").isEmpty
        let hasSubject = fields["subject_reference"] != nil && fields["subject_reference"] != .null

        switch rule.needs {
        case .image where firstFrame == nil:
            throw ValidationError(field: "first_frame_image", "first_frame_image is required by model \(model)")
        case .subject where !hasSubject:
            throw ValidationError(field: "subject_reference", "subject_reference is required by model \(model)")
        case .text where firstFrame != nil:
            throw ValidationError(field: "first_frame_image", "model \(model) is text-to-video and takes no first_frame_image")
        default:
            break
        }
        if firstFrame == nil && !hasPrompt && rule.needs != .subject {
            throw ValidationError(field: "prompt", "prompt is required when there is no first_frame_image")
        }
        if lastFrame != nil {
            guard rule.lastFrame else { throw ValidationError(field: "last_frame_image", "last_frame_image is not supported by model \(model)") }
            guard firstFrame != nil else { throw ValidationError(field: "last_frame_image", "last_frame_image needs a first_frame_image") }
        }
        if hasSubject {
            guard rule.needs == .subject else { throw ValidationError(field: "subject_reference", "subject_reference is only for model S2V-01") }
            try subjectReference()
        }

        let resolutions = firstFrame != nil ? rule.imageResolutions : rule.textResolutions
        var resolution = rule.defaultResolution
        if let value = fields["resolution"], value != .null {
            guard let text = value.stringValue else { throw ValidationError(field: "resolution", "resolution must be a string such as \"768P\"") }
            guard resolutions[text.uppercased()] != nil else {
                throw ValidationError(field: "resolution", "resolution \(text) is not available for model \(model)\(firstFrame != nil ? " with a first frame" : ""); use \(resolutions.keys.sorted().joined(separator: ", "))")
            }
            resolution = text.uppercased()
        }
        if let value = fields["duration"], value != .null {
            guard let duration = value.intValue else { throw ValidationError(field: "duration", "duration must be an integer number of seconds") }
            let allowed = resolutions[resolution] ?? []
            guard allowed.contains(duration) else {
                throw ValidationError(field: "duration", "duration \(duration) s is not available at \(resolution) for model \(model); use \(allowed.map(String.init).joined(separator: " or ")) s")
            }
        }
        for flag in ["prompt_optimizer", "fast_pretreatment", "aigc_watermark"] {
            if let value = fields[flag], value != .null, value.boolValue == nil {
                throw ValidationError(field: flag, "\(flag) must be true or false")
            }
        }
        if fields["fast_pretreatment"]?.boolValue == true && !rule.fastPretreatment {
            throw ValidationError(field: "fast_pretreatment", "fast_pretreatment is only for the MiniMax-Hailuo models")
        }
        if let value = fields["callback_url"], value != .null {
            guard let text = value.stringValue, let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ValidationError(field: "callback_url", "callback_url must be an http:// or https:// URL")
            }
        }
    }

    /// Checks an image field (public URL or data URL); nil when absent.
    private func image(_ field: String) throws(ValidationError) -> String? {
        guard let value = fields[field], value != .null else { return nil }
        guard let text = value.stringValue, !text.isEmpty else { throw ValidationError(field: field, "\(field) must be a URL or a data URL") }
        try VideoRequest.checkImage(text, field: field)
        return text
    }

    private func subjectReference() throws(ValidationError) {
        guard case .array(let subjects)? = fields["subject_reference"], subjects.count == 1,
              case .object(let subject) = subjects[0] else {
            throw ValidationError(field: "subject_reference", "subject_reference must be an array of one subject object")
        }
        guard subject["type"]?.stringValue == "character" else {
            throw ValidationError(field: "subject_reference[0].type", "subject_reference[0].type must be \"character\"")
        }
        guard case .array(let images)? = subject["image"], images.count == 1, let image = images[0].stringValue else {
            throw ValidationError(field: "subject_reference[0].image", "subject_reference[0].image must be an array of one URL or data URL")
        }
        try VideoRequest.checkImage(image, field: "subject_reference[0].image")
    }

    static func checkImage(_ text: String, field: String) throws(ValidationError) {
        if text.lowercased().hasPrefix("data:") {
            guard let comma = text.firstIndex(of: ",") else { throw ValidationError(field: field, "\(field) is a data URL without data") }
            let header = text[text.index(text.startIndex, offsetBy: 5)..<comma].lowercased()
            guard header.hasSuffix(";base64") else { throw ValidationError(field: field, "\(field) must be a base64 data URL (data:image/png;base64,...)") }
            let type = header.dropLast(7)
            guard type.hasPrefix("image/"), imageTypes.contains(String(type.dropFirst(6))) else {
                throw ValidationError(field: field, "\(field) has type \(type); use image/jpeg, image/png or image/webp")
            }
            let encoded = text.utf8.count - text.utf8.distance(from: text.utf8.startIndex, to: comma.samePosition(in: text.utf8)!) - 1
            let bytes = encoded / 4 * 3
            guard bytes > 0 else { throw ValidationError(field: field, "\(field) is an empty data URL") }
            guard bytes < maxImageBytes else {
                throw ValidationError(field: field, "\(field) is \(bytes / 1_000_000) MB; images must be under 20 MB")
            }
        } else {
            guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
                throw ValidationError(field: field, "\(field) must be an http(s) URL or a data URL")
            }
        }
    }

    // MARK: What is kept and sent

    /// The client's own `callback_url`, kept on the task as `notify_url`.
    public var notifyURL: String? { fields["callback_url"]?.stringValue }

    /// The body to send upstream: every field but the client's callback URL, plus ours.
    public func upstreamBody(callbackURL: String) -> [String: JSONValue] {
        var body = fields
        body["callback_url"] = .string(callbackURL)
        return body
    }

    /// The fields as recorded on the task: images summarised, never whole.
    public var recorded: [String: JSONValue] {
        var copy = fields
        copy["callback_url"] = nil
        for key in ["first_frame_image", "last_frame_image"] {
            if let text = copy[key]?.stringValue { copy[key] = .string(VideoRequest.summary(ofImage: text)) }
        }
        if case .array(let subjects)? = copy["subject_reference"] {
            copy["subject_reference"] = .array(subjects.map { subject in
                guard case .object(var o) = subject, case .array(let images)? = o["image"] else { return subject }
                o["image"] = .array(images.map { $0.stringValue.map { .string(VideoRequest.summary(ofImage: $0)) } ?? $0 })
                return .object(o)
            })
        }
        return copy
    }

    /// `data:image/png;base64,… (183 KiB)` for a data URL; a URL as it is.
    public static func summary(ofImage text: String) -> String {
        guard text.lowercased().hasPrefix("data:"), let comma = text.firstIndex(of: ",") else { return text }
        let encoded = text.utf8.count - text.utf8.distance(from: text.utf8.startIndex, to: comma.samePosition(in: text.utf8)!) - 1
        let kib = max(1, (encoded / 4 * 3 + 1023) / 1024)
        return "\(text[...comma])… (\(kib) KiB)"
    }
}

/// A submit body the upstream would refuse: answered 400 with `base_resp` 2013.
public struct ValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String?
    public let message: String

    public init(field: String?, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { message }
}
