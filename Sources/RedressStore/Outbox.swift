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
    /// When the writing transaction inserted it: the relay's delay is measured from here.
    public var createdAt: Date = .distantPast
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
        try await connection.run(AppendStatement(lanes: lanes, ids: ids, topics: topics, keys: keys, types: types, payloads: payloads), logger: logger)
    }

    /// Key of the transaction-scoped advisory locks that stand for lanes ('rdob').
    static let laneLockKey: Int32 = 0x7264_6F62

    /// Takes up to `lanes` lanes that have pending rows and no other relay holds — transaction-scoped
    /// advisory locks, tried from lane `from` on so relays spread out — and returns their pending
    /// rows in commit order. The locks last until the transaction ends and cost no writes.
    /// Rows written by anything but a service (a tool, or before writers were recorded): any relay takes them.
    public static let anyWriter = "any"

    /// Locks up to `lanes` lanes holding rows of `writers` and returns those rows, oldest first.
    /// A lane is locked per writer: two instances of one service never publish the same writer's lane
    /// at once (a key's rows stay in order), and rows written by no service (`any`) are taken by one
    /// relay at a time. Different services' relays do not wait for each other: with one lock per lane
    /// for all writers, intake's relay found a lane held by routing's, published nothing, and slept
    /// its poll interval with its rows pending and their wake-up already spent (a 1 s tail at idle).
    public static func claim(lanes: Int, from start: Int = 0, limit: Int, writers: [String] = [anyWriter],
                             on connection: PostgresConnection, logger: Logger) async throws -> [OutboxRow] {
        var claimedWriters: [String] = []
        var claimedLanes: [Int16] = []
        // The (writer, lane) pairs with pending rows, locked lazily (`ClaimLanesStatement`).
        let candidates = try await connection.execute(ClaimLanesStatement(writers: writers, start: start, limit: lanes * max(writers.count, 1)),
                                                      logger: logger)
        for try await (writer, lane) in candidates {
            claimedWriters.append(writer)
            claimedLanes.append(lane)
        }
        guard !claimedLanes.isEmpty else { return [] }
        var result: [OutboxRow] = []
        for try await row in try await connection.execute(ClaimedRowsStatement(writers: claimedWriters, lanes: claimedLanes, limit: limit), logger: logger) {
            result.append(row)
        }
        return result
    }

    /// Removes rows whose delivery Kafka confirmed. Call in the transaction that claimed them.
    public static func markPublished(_ ids: [Int64], on connection: PostgresConnection, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        try await connection.run(MarkPublishedStatement(ids: ids), logger: logger)
    }

    /// Seconds since the oldest row of these writers was written; 0 when none is pending. The
    /// oldest by id (the primary key's order is commit order, near enough), so no scan of a backlog.
    public static func oldestPendingAge(writers: [String], _ client: PostgresClient, logger: Logger) async throws -> Double {
        let rows = try await client.query("""
            SELECT COALESCE(extract(epoch FROM now() - (SELECT created_at FROM outbox WHERE writer = ANY(\(writers)::text[]) ORDER BY id LIMIT 1)), 0)::float8
            """, logger: logger)
        for try await age in rows.decode(Double.self) { return max(0, age) }
        return 0
    }

    /// Rows of these writers waiting for the broker. Each service counts its own (on the
    /// `(writer, lane, id)` index): all six counting the whole outbox every few seconds cost a surge
    /// more statement time than some of its writes.
    public static func pendingCount(writers: [String], _ client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.query("SELECT count(*)::bigint FROM outbox WHERE writer = ANY(\(writers)::text[])", logger: logger)
        for try await count in rows.decode(Int64.self) { return Int(count) }
        return 0
    }
}

public enum Inbox {
    /// Deletes entries handled before `cutoff`, a slice at a time so no statement holds locks for long.
    /// Returns how many were deleted.
    @discardableResult
    public static func purge(handledBefore cutoff: Date, slice: Int = 10_000, _ client: PostgresClient, logger: Logger) async throws -> Int {
        var total = 0
        while true {
            var deleted = 0
            for try await n in try await client.query("""
                WITH old AS (SELECT ctid FROM inbox WHERE handled_at < \(cutoff) LIMIT \(slice))
                , gone AS (DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM old) RETURNING 1)
                SELECT count(*)::bigint FROM gone
                """, logger: logger).decode(Int64.self) {
                deleted = Int(n)
            }
            total += deleted
            if deleted < slice { return total }
        }
    }

    /// Records the events as handled by `group` and returns those not handled before.
    /// Call inside the transaction that applies their effects: a redelivered event is then a no-op.
    public static func claim(group: String, eventIDs: [UUID], on connection: PostgresConnection, logger: Logger) async throws -> Set<UUID> {
        guard !eventIDs.isEmpty else { return [] }
        var fresh = Set<UUID>()
        for try await id in try await connection.execute(InboxClaimStatement(group: group, eventIDs: eventIDs), logger: logger) { fresh.insert(id) }
        return fresh
    }
}
