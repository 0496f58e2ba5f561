import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Runs `body` every `interval` once the start-up gate opens, until shutdown; a failed round is
/// logged and the next one comes as usual. What the services' gauges counted from the database use.
public struct Periodic: Service {
    let name: String
    let interval: Duration
    let gate: StartupGate
    let logger: Logger
    let body: @Sendable () async throws -> Void

    public init(_ name: String, every interval: Duration, gate: StartupGate, logger: Logger, _ body: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.gate = gate
        self.logger = logger
        self.body = body
    }

    public func run() async throws {
        await gate.wait()
        guard gate.isOpen else { return }
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await body()
            } catch {
                logger.warning("\(name) failed; trying again in \(interval)", metadata: ["error": "\(String(reflecting: error))"])
            }
            // The wait ends with a graceful shutdown too: a minute-long interval must not hold up SIGTERM.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}

/// Labelled gauges set from a query each round: series missing from a round go to zero rather
/// than keep their last value.
public final class GaugeSeries: Sendable {
    private let seen = NIOLockedValueBox<[String: Set<[String]>]>([:])

    public init() {}

    /// Records `values` (labels → value) for `label`, zeroing series seen before and absent now.
    public func record(_ label: String, dimensions: [String], _ values: [[String]: Double]) {
        let previous = seen.withLockedValue { seen in
            defer { seen[label, default: []].formUnion(values.keys) }
            return seen[label] ?? []
        }
        for key in previous.union(values.keys) {
            Gauge(label: label, dimensions: Array(zip(dimensions, key))).record(values[key] ?? 0)
        }
    }
}
