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

    public var topic: String { "redress." + rawValue }
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
