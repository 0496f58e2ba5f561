/// Where a benchmark's CPU went, from Linux's `/proc`: the machine's busy share over the timed run,
/// CPU milliseconds per complaint, and each program's part. Throughput alone cannot be compared across
/// machines (the same commit measured 2,515/s on one two-core machine and 1,083/s on a slower one);
/// CPU per complaint and a fixed calibration workload say whether the code or the machine changed.
/// Pure: the benchmark reads the files, this reads the text.
public enum CPUAccount {
    /// Clock ticks from the `cpu` line of `/proc/stat`: busy (everything but idle and iowait) and all.
    public struct MachineTicks: Sendable, Equatable {
        public var busy: UInt64
        public var total: UInt64
        public init(busy: UInt64, total: UInt64) {
            self.busy = busy
            self.total = total
        }
    }

    /// The aggregate `cpu` line of `/proc/stat` ("cpu  user nice system idle iowait irq softirq steal …").
    /// Steal counts as busy: time the hypervisor gave to another guest was not ours to use either.
    public static func machineTicks(procStat: String) -> MachineTicks? {
        guard let line = procStat.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        // guest and guest_nice (fields 9 and 10) are already inside user and nice.
        let fields = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard fields.count >= 4 else { return nil }
        let total = fields.reduce(0, +)
        let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
        return MachineTicks(busy: total - idle, total: total)
    }

    /// The command name and user + system ticks of one `/proc/<pid>/stat`. The name is between the first
    /// "(" and the last ")" and may itself hold spaces and parentheses; the fields after it are counted from there.
    public static func processTicks(stat: String) -> (command: String, ticks: UInt64)? {
        guard let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")"), open < close else { return nil }
        let command = String(stat[stat.index(after: open)..<close])
        // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15).
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        guard rest.count > 12, let user = UInt64(rest[11]), let system = UInt64(rest[12]) else { return nil }
        return (command, user + system)
    }

    /// The program a process belongs to, for the split: the stack's services by name, PostgreSQL's
    /// backends together, everything else as "other". The kernel cuts command names to 15 bytes.
    public static func program(command: String) -> String {
        if command == "postgres" || command.hasPrefix("postgres:") { return "postgres" }
        for name in ["intake", "routing", "cases", "notify", "surveys", "supervisor", "console", "devbroker", "bench"]
        where command.hasPrefix("redress-\(name.prefix(7))") {
            return name
        }
        return "other"
    }

    /// Each process's ticks since the run began, kept across readings: a process that ends inside the run
    /// keeps its last reading, one that starts inside it counts from zero.
    public struct Ledger: Sendable {
        private var base: [Int: UInt64] = [:]
        private var last: [Int: (program: String, ticks: UInt64)] = [:]

        /// `stats`: each process's `/proc/<pid>/stat` text when the run began.
        public init(start stats: [Int: String]) {
            for (pid, stat) in stats {
                if let reading = CPUAccount.processTicks(stat: stat) { base[pid] = reading.ticks }
            }
        }

        public mutating func record(_ stats: [Int: String]) {
            for (pid, stat) in stats {
                if let reading = CPUAccount.processTicks(stat: stat) { last[pid] = (CPUAccount.program(command: reading.command), reading.ticks) }
            }
        }

        /// Ticks each program used since the run began, up to the latest reading.
        public var ticksByProgram: [String: UInt64] {
            var byProgram: [String: UInt64] = [:]
            for (pid, reading) in last {
                let before = base[pid] ?? 0
                // A reused pid with fewer ticks than its predecessor's start: a new process, counted from zero.
                byProgram[reading.program, default: 0] += reading.ticks >= before ? reading.ticks - before : reading.ticks
            }
            return byProgram
        }
    }

    /// The timed run's account: the machine's busy share, CPU milliseconds per complaint (all cores,
    /// everything on the machine), and each program's share of the busy time (`Ledger.ticksByProgram`).
    public struct Summary: Sendable, Equatable {
        public struct Share: Sendable, Equatable {
            public var program: String
            public var share: Double
        }

        public var busyShare: Double
        public var cpuMillisecondsPerComplaint: Double
        public var shares: [Share]
    }

    public static func summary(start: MachineTicks, end: MachineTicks, ticksByProgram: [String: UInt64],
                               complaints: Int, ticksPerSecond: Double = 100) -> Summary? {
        guard end.total > start.total, end.busy >= start.busy, complaints > 0 else { return nil }
        let busy = Double(end.busy - start.busy)
        let busyShare = busy / Double(end.total - start.total)
        let perComplaint = busy / ticksPerSecond * 1000 / Double(complaints)
        let shares = ticksByProgram.filter { $0.value > 0 && busy > 0 }
            .map { Summary.Share(program: $0.key, share: Double($0.value) / busy) }
            .sorted { $0.share != $1.share ? $0.share > $1.share : $0.program < $1.program }
        return Summary(busyShare: busyShare, cpuMillisecondsPerComplaint: perComplaint, shares: shares)
    }
}
