/// Every event type the system emits. Each has its own topic, `redress.<type>`, so a consumer reads
/// only what it handles and load spreads over partitions (the development broker keeps ~5 MiB each).
public enum EventType: String, Sendable, Codable, CaseIterable {
    case complaintRegistered = "complaint.registered"
    case complaintAssigned = "complaint.assigned"
    case complaintUnassignable = "complaint.unassignable"
    case caseAssigned = "case.assigned"
    case caseEscalated = "case.escalated"
    case caseTransferred = "case.transferred"
    case caseReopened = "case.reopened"
    case caseClosed = "case.closed"
    case caseExtended = "case.extended"
    case caseUpdated = "case.updated"
    case slaWarning = "sla.warning"
    case slaBreached = "sla.breached"
    case notificationDelivered = "notification.delivered"
    case notificationFailed = "notification.failed"
    case surveyRequested = "survey.requested"
    case surveyAnswered = "survey.answered"
    case surveyDissatisfied = "survey.dissatisfied"
    /// 投诉进度查询: a customer asked for a one-time code to look up their complaint.
    case statusCodeRequested = "status.code_requested"
    /// The oversight duties (`OversightEvents.swift`).
    case inquiryOpened = "inquiry.opened"
    case inquiryAnswered = "inquiry.answered"
    case spotCheckDrawn = "spotcheck.drawn"
    case spotCheckDecided = "spotcheck.decided"
    case committeeReferred = "committee.referred"
    case committeeRuled = "committee.ruled"
    case registerChanged = "register.changed"

    public var topic: String { "redress." + rawValue }
}

extension EventType {
    /// The services whose code writes this event into the outbox, so whose relay publishes it and
    /// whose Kafka principal alone may write its topic (`deploy/kafka/acls.json`, checked against
    /// this table by the test suite). `redressctl` also writes every topic when it replays dead letters.
    public var writers: Set<String> {
        switch self {
        case .complaintRegistered: ["redress-intake"]
        case .complaintAssigned: ["redress-routing"]
        // Routing finds no owner; cases, when a deactivated agent's case finds none.
        case .complaintUnassignable: ["redress-routing", "redress-cases"]
        case .caseAssigned, .caseEscalated, .caseTransferred, .caseReopened, .caseClosed, .caseExtended, .caseUpdated: ["redress-cases"]
        case .slaWarning, .slaBreached: ["redress-supervisor"]
        case .notificationDelivered, .notificationFailed: ["redress-notify"]
        case .surveyRequested, .surveyAnswered, .surveyDissatisfied, .statusCodeRequested: ["redress-surveys"]
        case .inquiryOpened, .inquiryAnswered, .spotCheckDecided, .committeeReferred, .committeeRuled: ["redress-cases"]
        // Drawn on demand through the staff API, and monthly by the supervisor; an entry expires there too.
        case .spotCheckDrawn, .registerChanged: ["redress-cases", "redress-supervisor"]
        }
    }
}

public enum Topics {
    /// Upstream channels (call center, email gateway, WeChat, regulator interface) publish submissions here.
    public static let inbound = "redress.complaints.inbound"

    /// Partitions per topic: as many consumer instances as this can share the load.
    public static let defaultPartitions = 16

    /// Where an event that cannot be handled goes, with the reason in the `redress-dlq-reason` header.
    public static func deadLetter(_ topic: String) -> String { topic + ".dlq" }

    /// Every topic the system uses, dead-letter topics included: what the development broker creates.
    public static var all: [String] {
        let live = [inbound] + EventType.allCases.map(\.topic)
        return live + live.map(deadLetter)
    }

    /// The one definition of the topics: what the development broker creates and what
    /// `redressctl topics apply` creates (or reports drift from) on any cluster — compose's and
    /// Kubernetes' topic jobs run that verb — and what each service checks before it says it is ready.
    public static var specs: [TopicSpec] {
        all.map { name in
            let deadLetters = name.hasSuffix(".dlq")
            // Dead letters wait for a person: kept 30 days; events 14, longer than any consumer is down.
            return TopicSpec(name: name, partitions: deadLetters ? 4 : defaultPartitions, replicationFactor: 3,
                             retentionMs: Int64(deadLetters ? 30 : 14) * 86_400_000)
        }
    }

    public static func spec(_ name: String) -> TopicSpec? { specs.first { $0.name == name } }
}

/// A topic as Redress needs it: enough partitions to share among consumer instances, replicated,
/// kept long enough. The replication factor is capped at the cluster's broker count when applied.
public struct TopicSpec: Sendable, Equatable {
    public var name: String
    public var partitions: Int
    public var replicationFactor: Int
    public var retentionMs: Int64

    public init(name: String, partitions: Int, replicationFactor: Int, retentionMs: Int64) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.retentionMs = retentionMs
    }
}

/// Every consumer group of Redress and the topics it reads: what the supervisor measures lag for
/// (`redress_consumer_lag`), and what the deploy kit's ACLs grant (checked against each other by the
/// test suite). The services name the same groups where they subscribe.
public enum ConsumerGroups {
    public static let all: [String: [String]] = [
        "redress-intake": [Topics.inbound],
        "redress-routing": [EventType.complaintRegistered.topic],
        "redress-routing.reroute": [EventType.caseEscalated, .caseTransferred, .caseReopened].map(\.topic),
        "redress-cases": [EventType.complaintAssigned.topic],
        "redress-cases-sla": [EventType.slaBreached.topic],
        "redress-cases-surveys": [EventType.surveyDissatisfied.topic],
        "redress-notify.customer": [EventType.complaintRegistered, .caseAssigned, .caseUpdated, .caseExtended, .caseClosed, .surveyRequested,
                                    .statusCodeRequested].map(\.topic),
        "redress-notify.staff": [EventType.caseAssigned.topic],
        "redress-notify.oversight": [EventType.caseUpdated.topic],
        "redress-notify.unassignable": [EventType.complaintUnassignable.topic],
        "redress-notify.sla": [EventType.slaWarning, .slaBreached].map(\.topic),
        "redress-surveys": [EventType.caseClosed.topic],
        "redress-supervisor": [EventType.complaintRegistered, .caseAssigned, .caseUpdated, .caseExtended, .caseEscalated, .caseTransferred,
                               .caseReopened, .caseClosed, .notificationDelivered].map(\.topic),
    ]
}

/// Kafka header names. Headers let a consumer route and de-duplicate before parsing the body.
public enum Headers {
    public static let eventType = "redress-event-type"
    public static let eventID = "redress-event-id"
    public static let deadLetterReason = "redress-dlq-reason"
    public static let deadLetterSource = "redress-dlq-topic"
    public static let deadLetterConsumer = "redress-dlq-consumer"
    /// On a dead letter too large for the broker: the id of the `dead_letters` row holding it.
    public static let deadLetterStored = "redress-dlq-stored"
}
