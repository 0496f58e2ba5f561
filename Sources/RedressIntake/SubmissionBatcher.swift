import Logging
import Metrics
import NIOConcurrencyHelpers
import PostgresNIO
import RedressContracts

/// Group commit for `POST /v1/complaints`: requests that arrive while a registration transaction
/// is in flight are registered together in the next one. A lone request goes straight through;
/// under load, one transaction (and one fsync) serves many requests.
final class SubmissionBatcher: Sendable {
    private struct Pending {
        var submission: ValidSubmission
        var continuation: CheckedContinuation<Result<Registration, any Error>, Never>
    }

    private struct State {
        var queue: [Pending] = []
        var draining = false
    }

    private let state = NIOLockedValueBox(State())
    private let registrar: Registrar
    private let postgres: PostgresClient
    private let logger: Logger
    private let maxBatch: Int

    init(registrar: Registrar, postgres: PostgresClient, logger: Logger, maxBatch: Int = 500) {
        self.registrar = registrar
        self.postgres = postgres
        self.logger = logger
        self.maxBatch = maxBatch
    }

    func register(_ submission: ValidSubmission) async throws -> Registration {
        let result = await withCheckedContinuation { continuation in
            let start = state.withLockedValue { state -> Bool in
                state.queue.append(Pending(submission: submission, continuation: continuation))
                guard !state.draining else { return false }
                state.draining = true
                return true
            }
            if start {
                Task { await self.drain() }
            }
        }
        return try result.get()
    }

    private func drain() async {
        while true {
            let batch = state.withLockedValue { state -> [Pending] in
                let batch = Array(state.queue.prefix(maxBatch))
                state.queue.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            await process(batch)
        }
    }

    private func process(_ batch: [Pending]) async {
        var items = batch
        while !items.isEmpty {
            do {
                let started = ContinuousClock.now
                let registrations = try await postgres.withTransaction(logger: logger) { [registrar, logger, items] connection in
                    try await registrar.register(items.map(\.submission), on: connection, logger: logger)
                }
                // How many requests one transaction served, and how long it took: group commit's two sides.
                Recorder(label: "redress_intake_batch_size").record(items.count)
                Metrics.Timer(label: "redress_intake_batch_seconds").recordNanoseconds((ContinuousClock.now - started).nanoseconds)
                for (item, registration) in zip(items, registrations) {
                    item.continuation.resume(returning: .success(registration))
                }
                return
            } catch let error as PostgresTransactionError {
                // One bad item (an unknown branch) is answered alone; the rest go again without it.
                if let failure = error.closureError as? Registrar.Failure, case .unknownBranch(let index, _) = failure, items.indices.contains(index) {
                    items.remove(at: index).continuation.resume(returning: .failure(failure))
                    continue
                }
                items.forEach { $0.continuation.resume(returning: .failure(error)) }
                return
            } catch {
                items.forEach { $0.continuation.resume(returning: .failure(error)) }
                return
            }
        }
    }
}
