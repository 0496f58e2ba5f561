import Logging
import PostgresNIO
import ServiceLifecycle
import UnixSignals

/// Calls `reload` on SIGHUP and whenever a `NOTIFY` arrives on `channel` (what `redressctl`
/// sends to every instance at once). `reload` is told which of the two triggered it.
public struct ReloadListener: Service {
    let channel: String
    let postgres: PostgresClient
    let gate: StartupGate
    let logger: Logger
    let reload: @Sendable (String) -> Void

    public init(channel: String, postgres: PostgresClient, gate: StartupGate, logger: Logger, reload: @escaping @Sendable (String) -> Void) {
        self.channel = channel
        self.postgres = postgres
        self.gate = gate
        self.logger = logger
        self.reload = reload
    }

    public func run() async throws {
        await gate.wait()
        guard gate.isOpen else { return }
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) { reload("SIGHUP") }
            }
            group.addTask {
                while !Task.isCancelled {
                    do {
                        try await postgres.withConnection { connection in
                            try await connection.listen(on: channel) { notifications in
                                for try await _ in notifications { reload("NOTIFY \(channel)") }
                            }
                        }
                    } catch {
                        if Task.isCancelled { return }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
