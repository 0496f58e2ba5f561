import Foundation
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Opens once: services wait on it for start-up work (migrations) to finish before touching the database.
public final class StartupGate: Sendable {
    private let state = NIOLockedValueBox<(open: Bool, waiters: [(id: UUID, continuation: CheckedContinuation<Void, Never>)])>((false, []))

    public init() {}

    public var isOpen: Bool { state.withLockedValue { $0.open } }

    public func open() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        waiters.forEach { $0.resume() }
    }

    /// Returns when the gate opens, or when the process is told to stop (graceful shutdown or
    /// cancellation) before the database was ever reached: the caller checks `isOpen` after.
    public func wait() async {
        let id = UUID()
        await withGracefulShutdownHandler {
            await waitOrCancel(id)
        } onGracefulShutdown: {
            self.release(id)
        }
    }

    private func release(_ id: UUID) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        waiter?.resume()
    }

    private func waitOrCancel(_ id: UUID) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let ready = state.withLockedValue { state -> Bool in
                    if state.open || Task.isCancelled || Task.isShuttingDownGracefully { return true }
                    state.waiters.append((id, continuation))
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            self.release(id)
        }
    }
}

/// A wake-up call for one waiting loop: a signal while nobody waits is remembered, and a wait
/// returns at the signal or the timeout, whichever is first.
public final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    public func signal() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    public func wait(timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLockedValue { state -> Bool in
                    if state.pending || Task.isCancelled {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }
}
