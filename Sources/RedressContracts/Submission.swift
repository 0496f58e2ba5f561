import Foundation
import RedressDomain

/// The one inbound contract: the body of `POST /v1/complaints` and the value of a message on
/// `redress.complaints.inbound` are the same document, validated by the same code.
/// Every field is optional here so that validation can name every problem at once.
public struct ComplaintSubmission: Sendable, Codable, Equatable {
    public struct Customer: Sendable, Codable, Equatable {
        public var name: String?
        public var phone: String?
        public var idNumber: String?
        public var flags: [String]?
        /// How the customer wants to hear from us, and what they consented to.
        public var email: String?
        public var wechatOpenId: String?
        public var preferredChannel: String?
        /// False when the customer opted out of text messages.
        public var smsConsent: Bool?
        public var language: String?

        public init(name: String? = nil, phone: String? = nil, idNumber: String? = nil, flags: [String]? = nil, email: String? = nil,
                    wechatOpenId: String? = nil, preferredChannel: String? = nil, smsConsent: Bool? = nil, language: String? = nil) {
            self.name = name
            self.phone = phone
            self.idNumber = idNumber
            self.flags = flags
            self.email = email
            self.wechatOpenId = wechatOpenId
            self.preferredChannel = preferredChannel
            self.smsConsent = smsConsent
            self.language = language
        }
    }

    /// Evidence the customer supplied (a claim letter, a photo, a call recording), by reference:
    /// the bytes stay in the channel's document store; the complaint keeps where to find them.
    public struct Attachment: Sendable, Codable, Equatable {
        public var name: String?
        public var uri: String?
        public var contentType: String?
        public var size: Int?

        public init(name: String? = nil, uri: String? = nil, contentType: String? = nil, size: Int? = nil) {
            self.name = name
            self.uri = uri
            self.contentType = contentType
            self.size = size
        }
    }

    public struct RegulatorTransfer: Sendable, Codable, Equatable {
        public var caseNumber: String?
        public var deadline: Date?

        public init(caseNumber: String? = nil, deadline: Date? = nil) {
            self.caseNumber = caseNumber
            self.deadline = deadline
        }
    }

    public var channel: String?
    public var externalRef: String?
    /// When the customer complained, not when we saw it: the statutory clocks start here.
    public var receivedAt: Date?
    public var customer: Customer?
    public var policyNumber: String?
    public var claimNumber: String?
    public var claimStage: String?
    /// The unit code of the branch the customer belongs to.
    public var branch: String?
    public var subject: String?
    public var content: String?
    public var regulator: RegulatorTransfer?
    public var attachments: [Attachment]?
    /// Staff id of the agent who sold the policy, when known: never assigned the complaint (conflict of interest).
    public var policyAgent: String?
    /// Staff id of whoever handled the disputed claim, when known: likewise never assigned.
    public var claimHandler: String?

    public init(
        channel: String? = nil, externalRef: String? = nil, receivedAt: Date? = nil, customer: Customer? = nil,
        policyNumber: String? = nil, claimNumber: String? = nil, claimStage: String? = nil, branch: String? = nil,
        subject: String? = nil, content: String? = nil, regulator: RegulatorTransfer? = nil,
        policyAgent: String? = nil, claimHandler: String? = nil, attachments: [Attachment]? = nil
    ) {
        self.channel = channel
        self.externalRef = externalRef
        self.receivedAt = receivedAt
        self.customer = customer
        self.policyNumber = policyNumber
        self.claimNumber = claimNumber
        self.claimStage = claimStage
        self.branch = branch
        self.subject = subject
        self.content = content
        self.regulator = regulator
        self.policyAgent = policyAgent
        self.claimHandler = claimHandler
        self.attachments = attachments
    }
}

/// One thing wrong with one field, said so that the sender can fix it.
public struct FieldError: Sendable, Codable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String

    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// A submission that passed validation: every required field present and well-formed.
public struct ValidSubmission: Sendable, Equatable {
    public var channel: Channel
    public var externalRef: String
    public var receivedAt: Date
    public var customerName: String
    public var customerPhone: String
    public var customerIDNumber: String?
    public var customerFlags: [CustomerFlag]
    public var policyNumber: String?
    public var claimNumber: String?
    public var claimStage: String?
    public var branch: String
    public var subject: String
    public var content: String
    public var regulatorCaseNumber: String?
    public var regulatorDeadline: Date?
    public var policyAgent: String?
    public var claimHandler: String?
    public var attachments: [AttachmentReference] = []
    public var contact: CustomerContact = CustomerContact()
}

/// Where and how a customer is told: stored with the complaint (full addresses are personal data),
/// read by notify when it sends.
public struct CustomerContact: Sendable, Codable, Equatable {
    public enum Channel: String, Sendable, Codable, CaseIterable {
        case sms, wechat, email
    }

    public enum Language: String, Sendable, Codable, CaseIterable {
        case zhCN = "zh-CN"
        case en
    }

    public var email: String?
    public var wechatOpenId: String?
    public var preferredChannel: Channel?
    /// False when the customer opted out of text messages: they are never texted.
    public var smsConsent: Bool
    public var language: Language

    public init(email: String? = nil, wechatOpenId: String? = nil, preferredChannel: Channel? = nil, smsConsent: Bool = true, language: Language = .zhCN) {
        self.email = email
        self.wechatOpenId = wechatOpenId
        self.preferredChannel = preferredChannel
        self.smsConsent = smsConsent
        self.language = language
    }

    /// The channels to try, in order: the preferred one where possible, then WeChat, email, SMS —
    /// each only with an address, and SMS only with consent.
    public func channels(complainedThrough: RedressDomain.Channel) -> [Channel] {
        var order: [Channel] = []
        if let preferredChannel { order.append(preferredChannel) }
        switch complainedThrough {
        case .wechat: order.append(.wechat)
        case .email: order.append(.email)
        default: break
        }
        order += [.sms, .wechat, .email]
        var seen: Set<Channel> = []
        return order.filter { channel in
            guard seen.insert(channel).inserted else { return false }
            switch channel {
            case .sms: return smsConsent
            case .wechat: return wechatOpenId != nil
            case .email: return email != nil
            }
        }
    }
}

/// A validated attachment reference.
public struct AttachmentReference: Sendable, Codable, Equatable {
    public var name: String
    public var uri: String
    public var contentType: String?
    public var size: Int?

    public init(name: String, uri: String, contentType: String?, size: Int?) {
        self.name = name
        self.uri = uri
        self.contentType = contentType
        self.size = size
    }
}

public enum SubmissionValidator {
    public static let maxContentCharacters = 20_000
    public static let maxSubjectCharacters = 200
    /// How far in the future a receivedAt may lie (clock skew between channel platforms and us).
    public static let allowedClockSkew: TimeInterval = 300
    public static let maxAttachments = 20
    /// Where attachments may live: the channels' document stores, never inline data.
    public static let attachmentSchemes: Set<String> = ["https", "s3", "oss"]

    /// Either a valid submission or every problem found, each naming its field.
    public static func validate(_ s: ComplaintSubmission, now: Date) -> Result<ValidSubmission, SubmissionRejected> {
        var errors: [FieldError] = []

        let channel = s.channel.flatMap(Channel.init(rawValue:))
        if s.channel == nil {
            errors.append(FieldError("channel", "required; one of \(Channel.allCases.map(\.rawValue).joined(separator: ", "))"))
        } else if channel == nil {
            errors.append(FieldError("channel", "'\(s.channel!)' is not a channel; use one of \(Channel.allCases.map(\.rawValue).joined(separator: ", "))"))
        }

        let externalRef = text(s.externalRef, "externalRef", max: 128, &errors)
        if let ref = externalRef, !ref.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) {
            errors.append(FieldError("externalRef", "use printable ASCII without spaces (the channel's own reference)"))
        }

        if let received = s.receivedAt {
            if !Timestamp.storable.contains(received) {
                errors.append(FieldError("receivedAt", "must lie between 1970 and 9999"))
            } else if received.timeIntervalSince(now) > allowedClockSkew {
                errors.append(FieldError("receivedAt", "lies in the future; send the moment the customer complained"))
            }
        } else {
            errors.append(FieldError("receivedAt", "required: the moment the customer complained, RFC 3339 (2026-11-22T09:30:00+08:00)"))
        }

        var name: String?
        var phone: String?
        var idNumber: String?
        var flags: [CustomerFlag] = []
        if let customer = s.customer {
            name = text(customer.name, "customer.name", max: 100, &errors)
            if let p = customer.phone {
                let normalised = p.filter { $0 != " " && $0 != "-" }
                if PersonalData.isMainlandMobile(normalised) {
                    phone = normalised
                } else {
                    errors.append(FieldError("customer.phone", "'\(PersonalData.maskPhone(p))' is not a mainland mobile number (11 digits starting 13–19)"))
                }
            } else {
                errors.append(FieldError("customer.phone", "required: the customer's mobile number"))
            }
            if let id = customer.idNumber {
                if PersonalData.isResidentID(id.uppercased()) {
                    idNumber = id.uppercased()
                } else {
                    errors.append(FieldError("customer.idNumber", "not a valid 18-digit resident ID number (length or check digit wrong)"))
                }
            }
            for (index, raw) in (customer.flags ?? []).enumerated() {
                if let flag = CustomerFlag(rawValue: raw), flag != .vexatiousRegister {
                    if !flags.contains(flag) { flags.append(flag) }
                } else if raw == CustomerFlag.vexatiousRegister.rawValue {
                    errors.append(FieldError("customer.flags[\(index)]", "'\(raw)' is set from the vexatious-complainant register, not by a channel: leave it out"))
                } else {
                    errors.append(FieldError("customer.flags[\(index)]", "'\(raw)' is not a flag; use \(CustomerFlag.channelFlags.map(\.rawValue).joined(separator: ", "))"))
                }
            }
        } else {
            errors.append(FieldError("customer", "required: name and phone of the complaining customer"))
        }
        var contact = CustomerContact()
        if let customer = s.customer {
            if let email = customer.email {
                let parts = email.split(separator: "@", omittingEmptySubsequences: false)
                let forbidden: Set<Character> = [" ", "<", ">", "\"", "\\", ",", ";", "(", ")", "[", "]"]
                if email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
                   !email.contains(where: { forbidden.contains($0) || $0.isNewline || $0.unicodeScalars.contains { $0.properties.generalCategory == .control } }) {
                    contact.email = email
                } else {
                    errors.append(FieldError("customer.email", "is not an email address (name@example.com)"))
                }
            }
            if let openID = customer.wechatOpenId {
                if (1...128).contains(openID.count), openID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
                    contact.wechatOpenId = openID
                } else {
                    errors.append(FieldError("customer.wechatOpenId", "is not a WeChat openid (1–128 letters, digits, - and _)"))
                }
            }
            if let preferred = customer.preferredChannel {
                if let channel = CustomerContact.Channel(rawValue: preferred) {
                    contact.preferredChannel = channel
                } else {
                    errors.append(FieldError("customer.preferredChannel", "'\(preferred)' is not one of sms, wechat, email"))
                }
            }
            contact.smsConsent = customer.smsConsent ?? true
            if let language = customer.language {
                if let known = CustomerContact.Language(rawValue: language) {
                    contact.language = known
                } else {
                    errors.append(FieldError("customer.language", "'\(language)' is not one of zh-CN, en"))
                }
            }
        }

        let branch = text(s.branch, "branch", max: 32, &errors)
        if let b = branch, !OrgUnitCode.isValid(b) {
            errors.append(FieldError("branch", "'\(b)' is not a unit code (upper-case letters, digits and dashes, e.g. GD-SZ)"))
        }
        let subject = text(s.subject, "subject", max: maxSubjectCharacters, &errors)
        let content = text(s.content, "content", max: maxContentCharacters, &errors)
        let policy = optionalText(s.policyNumber, "policyNumber", max: 64, &errors)
        let claim = optionalText(s.claimNumber, "claimNumber", max: 64, &errors)
        let stage = optionalText(s.claimStage, "claimStage", max: 64, &errors)
        let policyAgent = optionalText(s.policyAgent, "policyAgent", max: 64, &errors)
        let claimHandler = optionalText(s.claimHandler, "claimHandler", max: 64, &errors)

        var attachments: [AttachmentReference] = []
        let given = s.attachments ?? []
        if given.count > maxAttachments {
            errors.append(FieldError("attachments", "\(given.count) attachments; at most \(maxAttachments) are accepted"))
        } else {
            for (index, attachment) in given.enumerated() {
                let field = "attachments[\(index)]"
                let name = text(attachment.name, field + ".name", max: 255, &errors)
                let uri = text(attachment.uri, field + ".uri", max: 2048, &errors)
                let contentType = optionalText(attachment.contentType, field + ".contentType", max: 128, &errors)
                if let uri {
                    let scheme = uri.split(separator: ":", maxSplits: 1).first.map { $0.lowercased() } ?? ""
                    if !uri.contains("://") || !attachmentSchemes.contains(scheme) {
                        errors.append(FieldError(field + ".uri", "must be a reference into a document store (\(attachmentSchemes.sorted().joined(separator: ", ")) URI), not inline data"))
                        continue
                    }
                }
                if let size = attachment.size, size < 0 {
                    errors.append(FieldError(field + ".size", "must not be negative"))
                }
                if let name, let uri { attachments.append(AttachmentReference(name: name, uri: uri, contentType: contentType, size: attachment.size)) }
            }
        }

        var regulatorCase: String?
        var regulatorDeadline: Date?
        if channel == .regulator {
            regulatorCase = text(s.regulator?.caseNumber, "regulator.caseNumber", max: 64, &errors)
            regulatorDeadline = s.regulator?.deadline
            if let deadline = regulatorDeadline, !Timestamp.storable.contains(deadline) {
                errors.append(FieldError("regulator.deadline", "must lie between 1970 and 9999: the deadline the regulator set"))
            } else if regulatorDeadline == nil {
                errors.append(FieldError("regulator.deadline", "required for regulator transfers: the deadline the regulator set"))
            }
        } else if s.regulator != nil {
            errors.append(FieldError("regulator", "only for channel 'regulator'"))
        }

        guard errors.isEmpty, let channel, let externalRef, let receivedAt = s.receivedAt, let name, let phone,
              let branch, let subject, let content
        else {
            return .failure(SubmissionRejected(errors: errors))
        }
        return .success(ValidSubmission(
            channel: channel, externalRef: externalRef, receivedAt: receivedAt, customerName: name,
            customerPhone: phone, customerIDNumber: idNumber, customerFlags: flags, policyNumber: policy,
            claimNumber: claim, claimStage: stage, branch: branch, subject: subject, content: content,
            regulatorCaseNumber: regulatorCase, regulatorDeadline: regulatorDeadline, policyAgent: policyAgent, claimHandler: claimHandler,
            attachments: attachments, contact: contact))
    }

    private static func text(_ value: String?, _ field: String, max: Int, _ errors: inout [FieldError]) -> String? {
        guard let value else {
            errors.append(FieldError(field, "required"))
            return nil
        }
        return checked(value, field, max: max, &errors)
    }

    private static func optionalText(_ value: String?, _ field: String, max: Int, _ errors: inout [FieldError]) -> String? {
        guard let value else { return nil }
        return checked(value, field, max: max, &errors)
    }

    private static func checked(_ value: String, _ field: String, max: Int, _ errors: inout [FieldError]) -> String? {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            errors.append(FieldError(field, "must not be empty"))
            return nil
        }
        if trimmed.count > max {
            errors.append(FieldError(field, "is \(trimmed.count) characters; at most \(max) are accepted"))
            return nil
        }
        if trimmed.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\r" && $0 != "\t" }) {
            errors.append(FieldError(field, "contains control characters"))
            return nil
        }
        return trimmed
    }
}

/// Why a submission was refused: every field error, and a one-line summary for headers and logs.
public struct SubmissionRejected: Error, Sendable, Equatable {
    public var errors: [FieldError]

    public init(errors: [FieldError]) { self.errors = errors }

    public var summary: String { errors.map(\.description).joined(separator: "; ") }
}
