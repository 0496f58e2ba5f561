import Foundation
import Logging
import NIOCore
import PostgresNIO
import RedressContracts

/// An event ready to be written to the outbox in the same transaction as the state change it reports.
public struct OutboxEntry: Sendable {
    public var eventID: UUID
    public var topic: String
    public var key: String
    public var eventType: String
    public var payload: ByteBuffer

    public init<P: EventPayload>(_ envelope: EventEnvelope<P>, encoder: JSONEncoder = EventCoding.encoder()) throws {
        eventID = envelope.id
        topic = P.eventType.topic
        key = envelope.complaintId.uuidString.lowercased()
        eventType = P.eventType.rawValue
        payload = ByteBuffer(bytes: try encoder.encode(envelope))
    }

    /// Lanes partition the outbox for the relays: same key, same lane, so one relay at a time publishes a complaint's events.
    public static let laneCount = 64

    public static func lane(of key: String) -> Int16 {
        // FNV-1a: stable across processes and releases, unlike Hasher.
        var hash: UInt32 = 2_166_136_261
        for byte in key.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int16(hash % UInt32(laneCount))
    }
}

/// A row the relay publishes.
public struct OutboxRow: Sendable {
    public var id: Int64
    public var eventID: UUID
    public var topic: String
    public var key: String
    public var eventType: String
    public var payload: ByteBuffer
}

public enum Outbox {
    /// Appends events in one statement. Call inside the transaction that makes the state change.
    public static func append(_ entries: [OutboxEntry], on connection: PostgresConnection, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        let lanes = entries.map { OutboxEntry.lane(of: $0.key) }
        let ids = entries.map(\.eventID)
        let topics = entries.map(\.topic)
        let keys = entries.map(\.key)
        let types = entries.map(\.eventType)
        let payloads = entries.map(\.payload)
        try await connection.query("""
            INSERT INTO outbox (lane, event_id, topic, key, event_type, payload)
            SELECT lane, event_id, topic, key, event_type, payload FROM unnest(\(lanes)::smallint[], \(ids)::uuid[], \(topics)::text[], \(keys)::text[], \(types)::text[], \(payloads)::bytea[])
                WITH ORDINALITY AS t(lane, event_id, topic, key, event_type, payload, n) ORDER BY n
            """, logger: logger)
    }

    /// Locks up to `lanes` lanes that have pending rows — skipping lanes another relay holds — and
    /// returns their pending rows in commit order. The locks last until the transaction ends.
    public static func claim(lanes: Int, limit: Int, on connection: PostgresConnection, logger: Logger) async throws -> [OutboxRow] {
        let rows = try await connection.query("""
            WITH claimed AS (
                SELECT l.lane FROM outbox_lanes l
                WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.lane = l.lane AND o.published_at IS NULL)
                ORDER BY l.lane
                FOR UPDATE SKIP LOCKED
                LIMIT \(lanes)
            )
            SELECT o.id, o.event_id, o.topic, o.key, o.event_type, o.payload
            FROM outbox o JOIN claimed c ON c.lane = o.lane
            WHERE o.published_at IS NULL
            ORDER BY o.id
            LIMIT \(limit)
            """, logger: logger)
        var result: [OutboxRow] = []
        for try await (id, eventID, topic, key, type, payload) in rows.decode((Int64, UUID, String, String, String, ByteBuffer).self) {
            result.append(OutboxRow(id: id, eventID: eventID, topic: topic, key: key, eventType: type, payload: payload))
        }
        return result
    }

    public static func markPublished(_ ids: [Int64], on connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await connection.query("UPDATE outbox SET published_at = now() WHERE id = ANY(\(ids)::bigint[])", logger: logger)
    }

    public static func pendingCount(_ client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("SELECT count(*)::bigint FROM outbox WHERE published_at IS NULL", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }

    /// Published rows are kept a while for inspection, then removed so the table stays small.
    public static func purgePublished(olderThan age: Duration, _ client: PostgresClient, logger: Logger) async throws {
        let seconds = Double(age.components.seconds)
        try await client.query("DELETE FROM outbox WHERE published_at < now() - make_interval(secs => \(seconds))", logger: logger)
    }
}

public enum Inbox {
    /// Records the events as handled by `group` and returns those not handled before.
    /// Call inside the transaction that applies their effects: a redelivered event is then a no-op.
    public static func claim(group: String, eventIDs: [UUID], on connection: PostgresConnection, logger: Logger) async throws -> Set<UUID> {
        guard !eventIDs.isEmpty else { return [] }
        let rows = try await connection.query("""
            INSERT INTO inbox (consumer_group, event_id)
            SELECT \(group), id FROM unnest(\(eventIDs)::uuid[]) AS t(id)
            ON CONFLICT DO NOTHING
            RETURNING event_id
            """, logger: logger)
        var fresh = Set<UUID>()
        for try await id in rows.decode(UUID.self) { fresh.insert(id) }
        return fresh
    }
}
