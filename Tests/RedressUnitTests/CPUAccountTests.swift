import Testing
@testable import RedressDomain

/// The benchmark's CPU account: what it reads from `/proc` and how it sums it. Real texts from Linux.
@Suite struct CPUAccountTests {
    static let procStat = """
        cpu  1000 50 300 8000 100 0 20 30 0 0
        cpu0 500 25 150 4000 50 0 10 15 0 0
        cpu1 500 25 150 4000 50 0 10 15 0 0
        intr 12345 0 0
        """

    @Test func theMachineLineCountsIdleAndIowaitAsIdleAndStealAsBusy() {
        let ticks = CPUAccount.machineTicks(procStat: Self.procStat)
        // user 1000 + nice 50 + system 300 + irq 0 + softirq 20 + steal 30 = 1400 busy; + idle 8000 + iowait 100.
        #expect(ticks == CPUAccount.MachineTicks(busy: 1400, total: 9500))
        #expect(CPUAccount.machineTicks(procStat: "intr 1 2 3") == nil)
    }

    @Test func aProcessNameWithSpacesAndParenthesesIsReadWhole() {
        let stat = "4242 (redress-notify) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 9 0 100 0 0"
        #expect(CPUAccount.processTicks(stat: stat)?.command == "redress-notify")
        #expect(CPUAccount.processTicks(stat: stat)?.ticks == 1801)
        let odd = "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 0 0 0"
        #expect(CPUAccount.processTicks(stat: odd)?.command == "a (b) c")
        #expect(CPUAccount.processTicks(stat: odd)?.ticks == 15)
        #expect(CPUAccount.processTicks(stat: "5 (short) S 1") == nil)
    }

    @Test func processesFallIntoTheirPrograms() {
        #expect(CPUAccount.program(command: "postgres") == "postgres")
        #expect(CPUAccount.program(command: "redress-supervi") == "supervisor") // the kernel keeps 15 bytes
        #expect(CPUAccount.program(command: "redress-devbrok") == "devbroker")
        #expect(CPUAccount.program(command: "redress-bench") == "bench")
        #expect(CPUAccount.program(command: "redress-intake") == "intake")
        #expect(CPUAccount.program(command: "swift-build") == "other")
    }

    static func stat(_ pid: Int, _ name: String, user: Int, system: Int) -> String {
        "\(pid) (\(name)) S 1 \(pid) \(pid) 0 -1 0 0 0 0 0 \(user) \(system) 0 0 20 0 1 0 0 0 0"
    }

    @Test func theLedgerCountsOnlyTheRunAndKeepsAProcessThatEnded() {
        var ledger = CPUAccount.Ledger(start: [10: Self.stat(10, "postgres", user: 100, system: 0),
                                               11: Self.stat(11, "postgres", user: 50, system: 50),
                                               20: Self.stat(20, "redress-intake", user: 7, system: 3)])
        ledger.record([10: Self.stat(10, "postgres", user: 130, system: 0), 11: Self.stat(11, "postgres", user: 60, system: 50),
                       20: Self.stat(20, "redress-intake", user: 17, system: 3)])
        // pid 11 ends; pid 12 (a new backend) starts inside the run and counts from zero.
        ledger.record([10: Self.stat(10, "postgres", user: 140, system: 0), 12: Self.stat(12, "postgres", user: 5, system: 0),
                       20: Self.stat(20, "redress-intake", user: 27, system: 3)])
        #expect(ledger.ticksByProgram == ["postgres": 40 + 10 + 5, "intake": 20])
    }

    @Test func theSummaryGivesTheBusyShareCPUPerComplaintAndEachProgramsShare() throws {
        let summary = try #require(CPUAccount.summary(
            start: .init(busy: 1000, total: 2000), end: .init(busy: 1150, total: 2200),
            ticksByProgram: ["postgres": 75, "intake": 30, "notify": 30, "bench": 15], complaints: 300, ticksPerSecond: 100))
        #expect(summary.busyShare == 0.75)
        // 150 busy ticks = 1.5 CPU-seconds over 300 complaints.
        #expect(summary.cpuMillisecondsPerComplaint == 5)
        #expect(summary.shares.map(\.program) == ["postgres", "intake", "notify", "bench"])
        #expect(summary.shares.map(\.share) == [0.5, 0.2, 0.2, 0.1])
        #expect(CPUAccount.summary(start: .init(busy: 1, total: 2), end: .init(busy: 1, total: 2), ticksByProgram: [:], complaints: 1) == nil)
    }
}
