import Foundation
import Logging
import NIOCore
import PostgresNIO

// The statements every relay cycle and every consumer batch runs, prepared once per connection.
// Sent as unnamed statements, PostgreSQL parsed and planned each of them on every call: at 19
// complaints a second that was more of its time than executing them (`pg_stat_statements` with
// `track_planning`: the relay's lane claim alone planned for 0.4 ms a call against 0.1 ms executing,
// 6.4 calls a complaint; ARCHITECTURE.md, "Sixth pass"). Prepared, each connection parses and plans
// them once; PostgreSQL re-plans by itself when the tables they read change shape.

/// A statement that returns no rows: nothing to decode.
extension PostgresPreparedStatement where Row == () {
    func decodeRow(_ row: PostgresRow) throws {}
}

extension PostgresConnection {
    /// Runs a prepared statement that returns no rows. Drained rather than asked for its command
    /// tag: PostgresNIO's prepared-statement path asks the row stream for the tag before a row-less
    /// statement's stream has finished, and traps ("commandTag may only be called if all rows have
    /// been consumed").
    func run<Statement: PostgresPreparedStatement>(_ statement: Statement, logger: Logger) async throws where Statement.Row == () {
        for try await _ in try await execute(statement, logger: logger) {}
    }
}

/// Outbox rows appended in the writer's transaction, in the order given.
struct AppendStatement: PostgresPreparedStatement {
    static let name = "redress_outbox_append"
    static let sql = """
        INSERT INTO outbox (lane, event_id, topic, key, event_type, payload)
        SELECT lane, event_id, topic, key, event_type, payload FROM unnest($1::smallint[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[])
            WITH ORDINALITY AS t(lane, event_id, topic, key, event_type, payload, n) ORDER BY n
        """
    typealias Row = ()
    var lanes: [Int16]
    var ids: [UUID]
    var topics: [String]
    var keys: [String]
    var types: [String]
    var payloads: [ByteBuffer]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(lanes)
        bindings.append(ids)
        bindings.append(topics)
        bindings.append(keys)
        bindings.append(types)
        bindings.append(payloads)
        return bindings
    }
}

/// The (writer, lane) pairs with pending rows, found by one index probe per writer and lane (a loose
/// index scan), then locked lazily in lane order rotated to start at `$2`: OFFSET 0 keeps the lock
/// call out of the sort. The lock's second key is the pair's hash; a collision only makes two relays
/// take turns.
struct ClaimLanesStatement: PostgresPreparedStatement {
    static let name = "redress_outbox_claim_lanes"
    static let sql = """
        WITH RECURSIVE pending(writer, lane) AS (
            SELECT w, (SELECT o.lane FROM outbox o WHERE o.writer = w ORDER BY o.lane LIMIT 1) FROM unnest($1::text[]) AS w
            UNION ALL
            SELECT p.writer, (SELECT o.lane FROM outbox o WHERE o.writer = p.writer AND o.lane > p.lane ORDER BY o.lane LIMIT 1)
            FROM pending p WHERE p.lane IS NOT NULL
        )
        SELECT writer, lane FROM (
            SELECT writer, lane FROM pending WHERE lane IS NOT NULL
            ORDER BY (lane + \(OutboxEntry.laneCount) - $2::int) % \(OutboxEntry.laneCount), writer OFFSET 0
        ) AS candidates
        WHERE pg_try_advisory_xact_lock(\(Outbox.laneLockKey), hashtext(writer || '/' || lane))
        LIMIT $3::int
        """
    typealias Row = (String, Int16)
    var writers: [String]
    var start: Int
    var limit: Int

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(writers)
        bindings.append(Int32(start))
        bindings.append(Int32(limit))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// The pending rows of the lanes a relay holds, oldest first.
struct ClaimedRowsStatement: PostgresPreparedStatement {
    static let name = "redress_outbox_claimed_rows"
    static let sql = """
        SELECT id, event_id, topic, key, event_type, payload, created_at FROM outbox
        WHERE (writer, lane) IN (SELECT * FROM unnest($1::text[], $2::smallint[]))
        ORDER BY id
        LIMIT $3::int
        """
    typealias Row = OutboxRow
    var writers: [String]
    var lanes: [Int16]
    var limit: Int

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(writers)
        bindings.append(lanes)
        bindings.append(Int32(limit))
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row {
        let (id, eventID, topic, key, type, payload, created) = try row.decode((Int64, UUID, String, String, String, ByteBuffer, Date).self)
        return OutboxRow(id: id, eventID: eventID, topic: topic, key: key, eventType: type, payload: payload, createdAt: created)
    }
}

/// Rows whose delivery Kafka confirmed.
struct MarkPublishedStatement: PostgresPreparedStatement {
    static let name = "redress_outbox_mark_published"
    static let sql = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
    typealias Row = ()
    var ids: [Int64]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(ids)
        return bindings
    }
}

/// A consumer group's claim on the events of its batch: the ids not handled before come back.
struct InboxClaimStatement: PostgresPreparedStatement {
    static let name = "redress_inbox_claim"
    static let sql = """
        INSERT INTO inbox (consumer_group, event_id)
        SELECT $1::text, id FROM unnest($2::uuid[]) AS t(id)
        ON CONFLICT DO NOTHING
        RETURNING event_id
        """
    typealias Row = UUID
    var group: String
    var eventIDs: [UUID]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 2)
        bindings.append(group)
        bindings.append(eventIDs)
        return bindings
    }

    func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(UUID.self) }
}
