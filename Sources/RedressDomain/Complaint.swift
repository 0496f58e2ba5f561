/// Where a complaint came from. The raw values are the wire names used in events, SQL and metrics.
public enum Channel: String, Sendable, Codable, CaseIterable {
    /// 呼叫中心 — the call-center platform.
    case callCenter = "call_center"
    /// 电子邮件 — the email gateway.
    case email
    /// 在线 — web forms and online chat.
    case online
    /// 微信 — the WeChat account.
    case wechat
    /// 现场窗口 — a branch counter.
    case branchCounter = "branch_counter"
    /// 监管转办 — transferred by the regulator.
    case regulator
}

/// 分类 — the complaint categories the business reports on.
public enum Category: String, Sendable, Codable, CaseIterable {
    case claims      // 理赔类
    case service     // 服务类
    case product     // 产品类
    case sales       // 销售类 / mis-selling
    case other
}

/// 优先级 — urgency judged on intake.
public enum Priority: String, Sendable, Codable, CaseIterable, Comparable {
    case normal
    case high
    case urgent

    private var rank: Int {
        switch self {
        case .normal: 0
        case .high: 1
        case .urgent: 2
        }
    }

    public static func < (lhs: Priority, rhs: Priority) -> Bool { lhs.rank < rhs.rank }
}

/// Flags on the customer that change handling (特殊客户).
public enum CustomerFlag: String, Sendable, Codable, CaseIterable {
    case elderly
    case seriouslyIll = "seriously_ill"
    case vip
    /// On the vexatious-complainant register (无理缠访备案): set by intake from the register, never by a channel.
    case vexatiousRegister = "vexatious_register"

    /// The flags a channel may send.
    public static let channelFlags: [CustomerFlag] = [.elderly, .seriouslyIll, .vip]
}

/// 有责/无责 — the liability ruling recorded at closure.
public enum Liability: String, Sendable, Codable, CaseIterable {
    case liable
    case notLiable = "not_liable"
}
