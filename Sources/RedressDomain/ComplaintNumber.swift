import Foundation

/// 投诉编号: a number a customer can read back on the phone — `GD-SZ-20261122-000123`:
/// the receiving branch's code, the branch's local date, and that branch's sequence for the day.
public enum ComplaintNumber {
    public static func make(branch: String, day: String, sequence: Int) -> String {
        let seq = String(sequence)
        let padded = seq.count >= 6 ? seq : String(repeating: "0", count: 6 - seq.count) + seq
        return "\(branch)-\(day)-\(padded)"
    }
}

/// SLA clock kinds and their statutory defaults. The supervisor issue makes these a policy file;
/// the foundation starts the two clocks every complaint has.
public enum ClockKind: String, Sendable, Codable, CaseIterable {
    /// 告知受理 — tell the customer the complaint was received: 24 h.
    case acknowledge
    /// 首次调查联系 — first investigation contact: 24 h.
    case firstContact = "first_contact"
    /// 答复决定 — decision and reply: 15 calendar days from receipt (2020 regulation), extendable.
    case decision
    /// 理赔后续问题 — a solution for a post-claim question: 48 h.
    case postClaim = "post_claim"
    /// 每日更新处理状态 — the customer hears how it is going: every 24 h for the categories the policy
    /// names, restarted by each recorded contact, due at the promised next contact when one was given.
    case update
    /// 转相关部门调查 — a department answers the case owner's inquiry: 3 working days. Runs per
    /// inquiry, from when it is asked, not per complaint.
    case inquiry
    /// 协调委员会 — the committee rules on a referral: 10 working days. Runs per referral.
    case ruling

    /// Whether the clock runs for each complaint (kept in `sla_clocks`), or for each inquiry or
    /// committee referral (kept on its own row).
    public var perComplaint: Bool { self != .inquiry && self != .ruling }
}

