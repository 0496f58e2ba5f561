import Foundation
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import RedressStore

/// What registering one submission came to.
public struct Registration: Sendable, Equatable {
    public var id: UUID
    public var number: String
    public var status: String
    public var promisedReplyBy: Date
    /// True when (channel, external reference) was already registered: the first complaint is answered.
    public var duplicate: Bool
    /// The open complaint this one repeats, when it does.
    public var repeatOf: ComplaintReference? = nil
    /// The customer's recently closed complaint this one may be a second complaint about.
    public var possibleSecondOf: ComplaintReference? = nil
}

/// 受理/登记: registers submissions in batches — one round trip per step, not per complaint —
/// inside the caller's transaction, together with their `complaint.registered` events.
public struct Registrar: Sendable {
    let personalData: PersonalDataKey
    /// Number ranges are taken in a transaction of their own: the branch's sequence row stays
    /// locked for one statement, not for a whole batch, so concurrent batches do not queue on it.
    /// A batch that then fails leaves a gap in the numbers; numbers are unique, not gapless.
    let numbers: PostgresClient
    /// Complaint numbers carry the branch's local date; the demo organisation is all in China (UTC+8).
    let branchUTCOffset = 8 * 3600
    static let actor = Actor.service("redress-intake")

    /// A complaint closed within this many days before another from the same customer makes the new one a possible second complaint.
    let secondComplaintDays: Int

    public init(personalData: PersonalDataKey, numbers: PostgresClient, secondComplaintDays: Int = 30) {
        self.personalData = personalData
        self.numbers = numbers
        self.secondComplaintDays = secondComplaintDays
    }

    public enum Failure: Error, Equatable {
        case unknownBranch(index: Int, branch: String)
    }

    public func register(_ submissions: [ValidSubmission], on connection: PostgresConnection, logger: Logger, now: Date = Date()) async throws -> [Registration] {
        guard !submissions.isEmpty else { return [] }

        // 1. Every branch must exist: a complaint is always owned by a unit of the tree.
        let branches = Array(Set(submissions.map(\.branch)))
        var known = Set<String>()
        for try await code in try await connection.query("SELECT code FROM org_units WHERE code = ANY(\(branches)::text[])", logger: logger).decode(String.self) {
            known.insert(code)
        }
        if let index = submissions.firstIndex(where: { !known.contains($0.branch) }) {
            throw Failure.unknownBranch(index: index, branch: submissions[index].branch)
        }

        // 2. Already registered (channel, external reference): answer with the first complaint.
        var results = [Registration?](repeating: nil, count: submissions.count)
        let existing = try await find(submissions.map { ($0.channel.rawValue, $0.externalRef) }, on: connection, logger: logger)
        var firstIndexOf: [String: Int] = [:]
        var fresh: [Int] = []
        for (index, s) in submissions.enumerated() {
            let key = s.channel.rawValue + "\u{1F}" + s.externalRef
            if let found = existing[key] {
                results[index] = found
            } else if firstIndexOf[key] == nil {
                firstIndexOf[key] = index
                fresh.append(index)
            }
        }

        // 3. Numbers: one sequence bump per (branch, day) for the whole batch.
        let day = Timestamp.compactDay(now, utcOffsetSeconds: branchUTCOffset)
        var byBranch: [String: [Int]] = [:]
        for index in fresh { byBranch[submissions[index].branch, default: []].append(index) }
        var numbers: [Int: String] = [:]
        if !byBranch.isEmpty {
            // All branches in one statement, in branch order so concurrent batches lock rows alike.
            let branches = byBranch.keys.sorted()
            let counts = branches.map { byBranch[$0]!.count }
            let rows = try await self.numbers.query("""
                INSERT INTO complaint_number_sequences (branch, day, last)
                SELECT branch, \(day), n FROM unnest(\(branches)::text[], \(counts)::int[]) AS t(branch, n) ORDER BY branch
                ON CONFLICT (branch, day) DO UPDATE SET last = complaint_number_sequences.last + EXCLUDED.last
                RETURNING branch, last
                """, logger: logger)
            for try await (branch, last) in rows.decode((String, Int).self) {
                let indices = byBranch[branch]!
                for (offset, index) in indices.enumerated() {
                    numbers[index] = ComplaintNumber.make(branch: branch, day: day, sequence: last - indices.count + 1 + offset)
                }
            }
        }

        // 4. Repeats (重复投诉): the same customer about the same policy while an earlier complaint is open.
        var keyOf: [Int: String] = [:]
        for index in fresh { keyOf[index] = personalData.customerKey(phone: submissions[index].customerPhone) }
        let withPolicy = fresh.filter { submissions[$0].policyNumber != nil }
        var openByCustomerPolicy: [String: ComplaintReference] = [:]
        if !withPolicy.isEmpty {
            let rows = try await connection.query("""
                SELECT DISTINCT ON (c.customer_key, c.policy_number) c.customer_key, c.policy_number, c.id, c.number
                FROM complaints c
                JOIN unnest(\(withPolicy.map { keyOf[$0]! })::text[], \(withPolicy.map { submissions[$0].policyNumber! })::text[]) AS t(key, policy)
                  ON c.customer_key = t.key AND c.policy_number = t.policy
                WHERE c.status <> 'closed'
                ORDER BY c.customer_key, c.policy_number, c.registered_at
                """, logger: logger)
            for try await (key, policy, id, number) in rows.decode((String, String, UUID, String).self) {
                openByCustomerPolicy[key + "\u{1F}" + policy] = ComplaintReference(id: id, number: number)
            }
        }
        // The same customer known by their ID number about the same policy, and anyone's open complaint
        // about the same claim, repeat it too (each lookup on its own index; most batches skip them).
        var idKeyOf: [Int: String] = [:]
        for index in fresh { if let idn = submissions[index].customerIDNumber { idKeyOf[index] = personalData.idNumberKey(idn) } }
        var openByIDPolicy: [String: ComplaintReference] = [:]
        let withIDPolicy = withPolicy.filter { idKeyOf[$0] != nil }
        if !withIDPolicy.isEmpty {
            for try await (key, policy, id, number) in try await connection.query("""
                SELECT DISTINCT ON (c.customer_id_key, c.policy_number) c.customer_id_key, c.policy_number, c.id, c.number
                FROM complaints c
                JOIN unnest(\(withIDPolicy.map { idKeyOf[$0]! })::text[], \(withIDPolicy.map { submissions[$0].policyNumber! })::text[]) AS t(key, policy)
                  ON c.customer_id_key = t.key AND c.policy_number = t.policy
                WHERE c.status <> 'closed'
                ORDER BY c.customer_id_key, c.policy_number, c.registered_at
                """, logger: logger).decode((String, String, UUID, String).self) {
                openByIDPolicy[key + "\u{1F}" + policy] = ComplaintReference(id: id, number: number)
            }
        }
        var openByClaim: [String: ComplaintReference] = [:]
        let claimNumbers = Array(Set(fresh.compactMap { submissions[$0].claimNumber }))
        if !claimNumbers.isEmpty {
            for try await (claim, id, number) in try await connection.query("""
                SELECT DISTINCT ON (c.claim_number) c.claim_number, c.id, c.number FROM complaints c
                WHERE c.claim_number = ANY(\(claimNumbers)::text[]) AND c.status <> 'closed' ORDER BY c.claim_number, c.registered_at
                """, logger: logger).decode((String, UUID, String).self) {
                openByClaim[claim] = ComplaintReference(id: id, number: number)
            }
        }
        // 可能的二次投诉: the same customer's complaint closed within the window.
        var recentlyClosed: [String: ComplaintReference] = [:]
        let since = now.addingTimeInterval(-Double(secondComplaintDays) * 86_400)
        for try await (key, idKey, id, number) in try await connection.query("""
            SELECT c.customer_key, c.customer_id_key, c.id, c.number FROM complaints c
            WHERE (c.customer_key = ANY(\(Array(Set(keyOf.values)))::text[]) OR c.customer_id_key = ANY(\(Array(Set(idKeyOf.values)))::text[]))
              AND c.status = 'closed' AND c.closed_at >= \(since)
            ORDER BY c.closed_at
            """, logger: logger).decode((String, String?, UUID, String).self) {
            recentlyClosed[key] = ComplaintReference(id: id, number: number)
            if let idKey { recentlyClosed["id:" + idKey] = ComplaintReference(id: id, number: number) }
        }

        // 无理缠访备案: a customer on the register (approved, not yet due for review) is flagged, never
        // refused (投诉不销号); routing then sends the complaint to the unit supervisor's queue. The flag
        // is the register's alone: one a channel sends is dropped.
        var registered = Set<String>()
        let freshKeys = Array(Set(fresh.compactMap { keyOf[$0] }))
        if !freshKeys.isEmpty {
            for try await key in try await connection.query("""
                SELECT customer_key FROM vexatious_register WHERE status = 'approved' AND review_at > now() AND customer_key = ANY(\(freshKeys)::text[])
                """, logger: logger).decode(String.self) { registered.insert(key) }
        }
        func flagsOf(_ index: Int) -> [CustomerFlag] {
            submissions[index].customerFlags.filter { $0 != .vexatiousRegister } + (registered.contains(keyOf[index]!) ? [.vexatiousRegister] : [])
        }

        // 5. Insert; a row another instance inserted meanwhile conflicts and is answered as a duplicate.
        var ids: [UUID] = [], nums: [String] = [], channels: [String] = [], refs: [String] = [], received: [Date] = []
        var promised: [Date] = [], branchCodes: [String] = [], names: [String] = [], phones: [String] = []
        var idNumbers: [String] = [], keys: [String] = [], flags: [String] = [], policies: [String] = [], claims: [String] = []
        var stages: [String] = [], subjects: [String] = [], contents: [String] = [], regCases: [String] = [], regDeadlines: [String] = []
        var repeats: [String] = [], agents: [String] = [], handlers: [String] = [], attachmentLists: [String] = [], contacts: [String] = []
        var idKeys: [String] = [], seconds: [String] = []
        let attachmentEncoder = JSONEncoder()
        var lastContact: (CustomerContact, String)?
        var entries: [(index: Int, id: UUID, promised: Date, key: String, repeatOf: ComplaintReference?, possibleSecondOf: ComplaintReference?)] = []
        for index in fresh {
            let s = submissions[index]
            let id = UUID()
            let promise = DecisionDeadline.promise(receivedAt: s.receivedAt, regulatorDeadline: s.regulatorDeadline)
            let key = keyOf[index]!
            var repeatOf: ComplaintReference?
            if let policyNumber = s.policyNumber {
                let pair = key + "\u{1F}" + policyNumber
                repeatOf = openByCustomerPolicy[pair] ?? idKeyOf[index].flatMap { openByIDPolicy[$0 + "\u{1F}" + policyNumber] }
                // The first of a batch is what later ones in the same batch repeat.
                if repeatOf == nil { openByCustomerPolicy[pair] = ComplaintReference(id: id, number: numbers[index]!) }
            }
            if repeatOf == nil, let claim = s.claimNumber { repeatOf = openByClaim[claim] }
            let possibleSecondOf = repeatOf == nil ? (recentlyClosed[key] ?? idKeyOf[index].flatMap { recentlyClosed["id:" + $0] }) : nil
            seconds.append(possibleSecondOf?.id.uuidString ?? "")
            repeats.append(repeatOf?.id.uuidString ?? "")
            agents.append(s.policyAgent ?? "")
            handlers.append(s.claimHandler ?? "")
            // Most complaints carry no attachment and the same contact preferences: each JSON text is made once.
            attachmentLists.append(s.attachments.isEmpty ? "[]" : String(decoding: try attachmentEncoder.encode(s.attachments), as: UTF8.self))
            if let last = lastContact, last.0 == s.contact {
                contacts.append(last.1)
            } else {
                let text = String(decoding: try attachmentEncoder.encode(s.contact), as: UTF8.self)
                lastContact = (s.contact, text)
                contacts.append(text)
            }
            entries.append((index, id, promise, key, repeatOf, possibleSecondOf))
            ids.append(id); nums.append(numbers[index]!); channels.append(s.channel.rawValue); refs.append(s.externalRef)
            received.append(s.receivedAt); promised.append(promise); branchCodes.append(s.branch); names.append(s.customerName)
            phones.append(s.customerPhone); idNumbers.append(s.customerIDNumber ?? ""); keys.append(key)
            idKeys.append(idKeyOf[index] ?? "")
            flags.append(flagsOf(index).map(\.rawValue).joined(separator: ",")); policies.append(s.policyNumber ?? "")
            claims.append(s.claimNumber ?? ""); stages.append(s.claimStage ?? ""); subjects.append(s.subject); contents.append(s.content)
            regCases.append(s.regulatorCaseNumber ?? ""); regDeadlines.append(s.regulatorDeadline.map(Timestamp.format) ?? "")
        }
        var inserted = Set<UUID>()
        if !ids.isEmpty {
            let rows = try await connection.query("""
                INSERT INTO complaints (id, number, channel, external_ref, received_at, registered_at, promised_reply_by, branch,
                    customer_name, customer_phone, customer_id_number, customer_key, customer_id_key, customer_flags, policy_number, claim_number,
                    claim_stage, subject, content, regulator_case_number, regulator_deadline, repeat_of,
                    policy_agent, claim_handler, attachments, customer_contact, possible_second_of)
                SELECT id, number, channel, ref, received, \(now), promised, branch, name, phone, NULLIF(idn, ''), key, NULLIF(idkey, ''),
                    COALESCE(string_to_array(NULLIF(flags, ''), ','), '{}'), NULLIF(policy, ''), NULLIF(claim, ''), NULLIF(stage, ''),
                    subject, content, NULLIF(regcase, ''), NULLIF(regdeadline, '')::timestamptz, NULLIF(repeat, '')::uuid,
                    NULLIF(agent, ''), NULLIF(handler, ''), attachments::jsonb, contact::jsonb, NULLIF(second, '')::uuid
                FROM unnest(\(ids)::uuid[], \(nums)::text[], \(channels)::text[], \(refs)::text[], \(received)::timestamptz[],
                    \(promised)::timestamptz[], \(branchCodes)::text[], \(names)::text[], \(phones)::text[], \(idNumbers)::text[],
                    \(keys)::text[], \(flags)::text[], \(policies)::text[], \(claims)::text[], \(stages)::text[], \(subjects)::text[],
                    \(contents)::text[], \(regCases)::text[], \(regDeadlines)::text[], \(repeats)::text[], \(agents)::text[], \(handlers)::text[], \(attachmentLists)::text[], \(contacts)::text[],
                    \(idKeys)::text[], \(seconds)::text[])
                    AS t(id, number, channel, ref, received, promised, branch, name, phone, idn, key, flags, policy, claim, stage,
                         subject, content, regcase, regdeadline, repeat, agent, handler, attachments, contact, idkey, second)
                ON CONFLICT (channel, external_ref) DO NOTHING
                RETURNING id
                """, logger: logger)
            for try await id in rows.decode(UUID.self) { inserted.insert(id) }
        }

        var events: [OutboxEntry] = []
        let encoder = EventCoding.encoder()
        var lost: [(String, String)] = []
        var repeatTally = CounterTally("redress_complaints_repeats_total", dimensions: ["channel"])
        for entry in entries {
            let s = submissions[entry.index]
            guard inserted.contains(entry.id) else {
                lost.append((s.channel.rawValue, s.externalRef))
                continue
            }
            let number = numbers[entry.index]!
            results[entry.index] = Registration(id: entry.id, number: number, status: CaseStatus.registered.rawValue, promisedReplyBy: entry.promised,
                                                duplicate: false, repeatOf: entry.repeatOf, possibleSecondOf: entry.possibleSecondOf)
            let payload = ComplaintRegistered(
                number: number, channel: s.channel, externalRef: s.externalRef, receivedAt: s.receivedAt, registeredAt: now,
                promisedReplyBy: entry.promised, branch: s.branch,
                customer: MaskedCustomer(name: PersonalData.maskName(s.customerName), key: entry.key, flags: flagsOf(entry.index)),
                policyNumber: s.policyNumber, claimNumber: s.claimNumber, claimStage: s.claimStage,
                subject: PersonalData.redact(s.subject), content: PersonalData.redact(s.content),
                regulatorCaseNumber: s.regulatorCaseNumber, regulatorDeadline: s.regulatorDeadline, repeatOf: entry.repeatOf,
                policyAgent: s.policyAgent, claimHandler: s.claimHandler, attachments: s.attachments, possibleSecondOf: entry.possibleSecondOf)
            if entry.repeatOf != nil { repeatTally.add(s.channel.rawValue) }
            events.append(try OutboxEntry(EventEnvelope(occurredAt: now, complaintId: entry.id, orgUnit: s.branch, actor: Self.actor, payload: payload), encoder: encoder))
        }
        if !lost.isEmpty {
            let raced = try await find(lost, on: connection, logger: logger)
            for entry in entries where results[entry.index] == nil {
                let s = submissions[entry.index]
                results[entry.index] = raced[s.channel.rawValue + "\u{1F}" + s.externalRef]
            }
        }
        try await Outbox.append(events, on: connection, logger: logger)
        repeatTally.record()

        // Repeats inside the batch answer like the first of them.
        for (index, s) in submissions.enumerated() where results[index] == nil {
            if let first = firstIndexOf[s.channel.rawValue + "\u{1F}" + s.externalRef], var answer = results[first] {
                answer.duplicate = true
                results[index] = answer
            }
        }
        var receivedTally = CounterTally("redress_complaints_received_total", dimensions: ["channel", "branch"])
        var duplicates = CounterTally("redress_complaints_duplicates_total", dimensions: ["channel"])
        for (index, s) in submissions.enumerated() {
            if results[index]?.duplicate == true {
                duplicates.add(s.channel.rawValue)
            } else {
                receivedTally.add(s.channel.rawValue, s.branch)
            }
        }
        receivedTally.record()
        duplicates.record()
        return results.map { $0! }
    }

    private func find(_ pairs: [(String, String)], on connection: PostgresConnection, logger: Logger) async throws -> [String: Registration] {
        guard !pairs.isEmpty else { return [:] }
        let rows = try await connection.query("""
            SELECT c.channel, c.external_ref, c.id, c.number, c.status, c.promised_reply_by
            FROM complaints c JOIN unnest(\(pairs.map(\.0))::text[], \(pairs.map(\.1))::text[]) AS t(channel, ref)
              ON c.channel = t.channel AND c.external_ref = t.ref
            """, logger: logger)
        var found: [String: Registration] = [:]
        for try await (channel, ref, id, number, status, promised) in rows.decode((String, String, UUID, String, String, Date).self) {
            found[channel + "\u{1F}" + ref] = Registration(id: id, number: number, status: status, promisedReplyBy: promised, duplicate: true)
        }
        return found
    }
}
