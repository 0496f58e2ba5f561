import Foundation
import Mustache
import RedressDomain

/// The message templates of a deployment (`deploy/notify/templates.json`): per template, per
/// language (zh-CN, en), per channel, a body (and a subject for email) with `{{field}}` slots.
/// Validated whole at start: a template naming a field its event does not supply fails the start,
/// not the send.
public struct TemplateBook: Sendable, Equatable {
    public static func == (a: TemplateBook, b: TemplateBook) -> Bool { a.templates == b.templates }

    public struct Text: Sendable, Codable, Equatable {
        public var subject: String?
        public var body: String
    }

    public struct Template: Sendable, Codable, Equatable {
        public var id: String
        public var audience: String
        public var texts: [String: [String: Text]]
    }

    struct File: Codable {
        var templates: [Template]
    }

    public static let languages = ["zh-CN", "en"]
    public static let customerChannels = ["sms", "wechat", "email"]
    public static let staffChannels = ["staff_inbox"]

    /// The fields each template's event supplies: the only names a template may use.
    public static let fields: [String: Set<String>] = [
        "complaint.registered.acknowledgement": ["number", "customerName", "receivedAt", "promisedReplyBy"],
        "case.assigned.customer": ["number", "customerName", "handlerName", "promisedReplyBy"],
        "case.extended.customer": ["number", "customerName", "decisionDays", "promisedReplyBy", "reason"],
        "case.closed.customer": ["number", "customerName", "outcome"],
        "case.moved.customer": ["number", "customerName", "handlerName", "unitName", "promisedReplyBy"],
        "case.awaiting_customer.customer": ["number", "customerName", "needed", "respondBy"],
        "case.resolution_proposed.customer": ["number", "customerName", "proposal"],
        "survey.requested.customer": ["number", "customerName", "link", "expiresAt"],
        "status.code.customer": ["number", "customerName", "code", "expiresAt"],
        "case.assigned.owner": ["number", "priority", "promisedReplyBy"],
        "case.sent_back.owner": ["number", "reason"],
        "case.referred.committee": ["number", "reason"],
        "complaint.unassignable.supervisors": ["number", "unit", "reason"],
        "sla.warning.staff": ["number", "clock", "dueAt"],
        "sla.breached.staff": ["number", "clock", "dueAt"],
        "notification.failed.supervisors": ["number", "channel", "reason"],
    ]

    public let templates: [String: Template]
    /// Every text parsed once, at load (swift-mustache, plain text: nothing is HTML-escaped). Filling
    /// a text by searching and replacing each slot's name made template filling a third of notify's CPU.
    let compiled: [String: MustacheTemplate]

    static func compiledKey(_ id: String, _ language: String, _ channel: String, subject: Bool) -> String {
        id + "\u{1F}" + language + "\u{1F}" + channel + (subject ? "\u{1F}s" : "\u{1F}b")
    }

    /// Texts are SMS, WeChat and plain-text e-mail: a customer's name with `&` in it stays `&`.
    static func parse(_ text: String) throws -> MustacheTemplate {
        // Slots written with inner spaces ({{ number }}) are the same slot: Mustache reads both.
        try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + text)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var problems: [String]
        public var description: String { "templates are not usable: " + problems.joined(separator: "; ") }
    }

    public init(templates: [Template]) throws(Invalid) {
        var problems: [String] = []
        var byID: [String: Template] = [:]
        for template in templates {
            if byID[template.id] != nil { problems.append("\(template.id) is defined twice") }
            byID[template.id] = template
            guard let allowed = Self.fields[template.id] else {
                problems.append("\(template.id) is not a template any event sends (known: \(Self.fields.keys.sorted().joined(separator: ", ")))")
                continue
            }
            let channels = template.audience == "staff" ? Self.staffChannels : Self.customerChannels
            if template.audience != "staff" && template.audience != "customer" {
                problems.append("\(template.id): audience must be customer or staff, not \(template.audience)")
            }
            for language in Self.languages {
                guard let texts = template.texts[language] else {
                    problems.append("\(template.id) has no \(language) text")
                    continue
                }
                for channel in channels {
                    guard let text = texts[channel] else {
                        problems.append("\(template.id) \(language) has no \(channel) text")
                        continue
                    }
                    if channel == "email", (text.subject ?? "").isEmpty { problems.append("\(template.id) \(language) email needs a subject") }
                    if channel != "email", text.subject != nil { problems.append("\(template.id) \(language) \(channel) has a subject; only email has one") }
                    for field in Self.slots(in: (text.subject ?? "") + text.body) where !allowed.contains(field) {
                        problems.append("\(template.id) \(language) \(channel) names {{\(field)}}, which its event does not supply (it has \(allowed.sorted().joined(separator: ", ")))")
                    }
                }
                for channel in texts.keys where !channels.contains(channel) {
                    problems.append("\(template.id) \(language) has a text for \(channel), which \(template.audience) messages do not use")
                }
            }
        }
        for id in Self.fields.keys where byID[id] == nil { problems.append("\(id) is missing") }
        var compiled: [String: MustacheTemplate] = [:]
        for template in byID.values {
            for (language, texts) in template.texts {
                for (channel, text) in texts {
                    do {
                        compiled[Self.compiledKey(template.id, language, channel, subject: false)] = try Self.parse(text.body)
                        if let subject = text.subject {
                            compiled[Self.compiledKey(template.id, language, channel, subject: true)] = try Self.parse(subject)
                        }
                    } catch {
                        problems.append("\(template.id) \(language) \(channel) is not a valid template: \(error)")
                    }
                }
            }
        }
        guard problems.isEmpty else { throw Invalid(problems: problems.sorted()) }
        self.templates = byID
        self.compiled = compiled
    }

    public static func load(file: String) throws -> TemplateBook {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Invalid(problems: ["\(file) cannot be read: set REDRESS_NOTIFY_TEMPLATES to the templates file (deploy/notify/templates.json)"])
        }
        let parsed: File
        do {
            parsed = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw Invalid(problems: ["\(file) is not a templates file: \(error)"])
        }
        return try TemplateBook(templates: parsed.templates)
    }

    /// The `{{name}}` slots of a text.
    static func slots(in text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            names.append(String(rest[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespaces))
            rest = rest[close.upperBound...]
        }
        return names
    }

    /// The rendered subject and body. Validation guarantees every slot has a field; a language the
    /// book lacks falls back to zh-CN.
    public func render(_ id: String, language: String, channel: String, fields: [String: String]) -> (subject: String?, body: String) {
        let language = templates[id]!.texts[language] == nil ? "zh-CN" : language
        let body = compiled[Self.compiledKey(id, language, channel, subject: false)]!.render(fields)
        let subject = compiled[Self.compiledKey(id, language, channel, subject: true)]?.render(fields)
        return (subject, body)
    }
}

/// No customer texts at night: an SMS due in the quiet hours waits for their end (local time).
public struct QuietHours: Sendable, Equatable {
    /// Seconds after local midnight.
    public var start: Int
    public var end: Int
    public var timeZone: TimeZone

    public init(start: Int, end: Int, timeZone: TimeZone) {
        self.start = start
        self.end = end
        self.timeZone = timeZone
    }

    /// Parses "21:00-08:00".
    public static func parse(_ text: String, timeZone: TimeZone) -> QuietHours? {
        let parts = text.split(separator: "-")
        func seconds(_ s: Substring) -> Int? {
            let hm = s.split(separator: ":").compactMap { Int($0) }
            guard hm.count == 2, (0..<24).contains(hm[0]), (0..<60).contains(hm[1]) else { return nil }
            return hm[0] * 3600 + hm[1] * 60
        }
        guard parts.count == 2, let start = seconds(parts[0]), let end = seconds(parts[1]), start != end else { return nil }
        return QuietHours(start: start, end: end, timeZone: timeZone)
    }

    /// Nil when `date` is outside the quiet hours; otherwise the moment they end.
    public func release(for date: Date) -> Date? {
        let offset = timeZone.secondsFromGMT(for: date)
        let local = Int(date.timeIntervalSince1970) + offset
        let second = ((local % 86_400) + 86_400) % 86_400
        let midnight = local - second
        let quiet = start < end ? (second >= start && second < end) : (second >= start || second < end)
        guard quiet else { return nil }
        let endLocal = second < end ? midnight + end : midnight + 86_400 + end
        return Date(timeIntervalSince1970: TimeInterval(endLocal - offset))
    }
}

/// Retries wait longer each time, with jitter so a gateway's recovery is not met by every retry at once.
public struct Backoff: Sendable {
    public var base: Double
    public var cap: Double

    public init(base: Double = 2, cap: Double = 600) {
        self.base = base
        self.cap = cap
    }

    /// The wait before attempt `attempt + 1`, for a jitter draw `unit` in [0, 1): between half and all of the exponential step.
    public func delay(afterAttempt attempt: Int, unit: Double) -> Double {
        let step = min(cap, base * pow(2, Double(max(0, attempt - 1))))
        return step / 2 + step / 2 * unit
    }
}

/// At most `rate` sends a second per channel, with bursts up to `burst`.
public struct TokenBucket: Sendable {
    public var rate: Double
    public var burst: Double
    var tokens: Double
    var at: Date?

    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    /// The tokens there would be at `now`, none taken: what a round may claim for this channel.
    public func available(now: Date) -> Double {
        guard let at else { return tokens }
        return min(burst, tokens + now.timeIntervalSince(at) * rate)
    }

    /// Takes a token if one is available at `now`.
    public mutating func take(now: Date) -> Bool {
        tokens = available(now: now)
        at = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
