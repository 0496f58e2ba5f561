import Foundation
import RedressDomain

/// Who did it: a service, a staff member, a customer or an upstream channel.
public struct Actor: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable {
        case service, staff, customer, channel
    }

    public var kind: Kind
    public var id: String

    public init(kind: Kind, id: String) {
        self.kind = kind
        self.id = id
    }

    public static func service(_ name: String) -> Actor { Actor(kind: .service, id: name) }
}

/// The one envelope every event travels in. The Kafka key is `complaintId`, so all events of one
/// complaint land on one partition and keep their order.
public struct EventEnvelope<Payload: EventPayload>: Sendable, Codable {
    public var id: UUID
    public var type: String
    public var version: Int
    public var occurredAt: Date
    public var complaintId: UUID
    /// The org unit the event concerns (the handling unit, or the receiving branch before routing).
    public var orgUnit: String
    public var actor: Actor
    public var payload: Payload

    public init(id: UUID = UUID(), occurredAt: Date = Date(), complaintId: UUID, orgUnit: String, actor: Actor, payload: Payload) {
        self.id = id
        self.type = Payload.eventType.rawValue
        self.version = Payload.version
        self.occurredAt = occurredAt
        self.complaintId = complaintId
        self.orgUnit = orgUnit
        self.actor = actor
        self.payload = payload
    }
}

/// A payload type names its event type and schema version; the envelope takes both from it.
public protocol EventPayload: Sendable, Codable {
    static var eventType: EventType { get }
    static var version: Int { get }
}

extension EventPayload {
    public static var version: Int { 1 }
}

/// Encoding and decoding of events: one place, one date format (RFC 3339, UTC, milliseconds).
public enum EventCoding {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "'\(text)' is not an RFC 3339 timestamp such as 2026-11-22T09:30:00+08:00")
            }
            return date
        }
        return decoder
    }

    /// A decoding error as one sentence that names the field: what the dead-letter header and the 400 say.
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ keys: [any CodingKey]) -> String {
            let joined = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return joined.isEmpty ? "the document" : joined.replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(typeName(type)), found null"
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required field is missing"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "the body is not valid JSON" }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Double.Type: "a number"
        case is Bool.Type: "true or false"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}

/// Just enough of an envelope to route and de-duplicate without knowing the payload.
public struct EventHeader: Sendable, Codable {
    public var id: UUID
    public var type: String
    public var version: Int
    public var complaintId: UUID
    public var orgUnit: String
}
