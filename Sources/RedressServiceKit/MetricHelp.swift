/// `# HELP` lines for the exposition at `/metrics`. The metrics are made through swift-metrics,
/// whose factory gives swift-prometheus no help text (and swift-prometheus refuses a second,
/// different help for a name already made), so the text is added where the exposition is written:
/// before each `# TYPE` line that has no `# HELP` above it. One table for every service: a service
/// that never makes a metric simply has no line for it.
public enum MetricHelp {
    public static let texts: [String: String] = [
        "redress_http_requests_total": "HTTP requests answered, by route pattern, method and status.",
        "redress_http_request_duration_seconds": "Time from request to response, by route pattern and method.",
        "redress_events_consumed_total": "Events handled by a consumer, by topic.",
        "redress_events_failed_total": "Events a consumer could not handle (retried, then dead-lettered), by topic and reason.",
        "redress_event_batch_duration_seconds": "Time to handle one batch of events, by consumer group.",
        "redress_event_transit_seconds": "Per event: produced to Kafka until handled and committed by this consumer group (one hop of a complaint's way).",
        "redress_outbox_phase_seconds": "One relay cycle's parts: claim (lanes and rows), send (produce until every delivery report), mark (delete what was delivered), commit.",
        "redress_outbox_delay_seconds": "Per event: the writing transaction's start until the relay had it delivered to Kafka.",
        "redress_outbox_pending": "Events this service wrote to the outbox and its relay has not yet published to Kafka (sum over services: the backlog).",
        "redress_outbox_oldest_seconds": "Age of the oldest event this service wrote that its relay has not published yet; 0 when none.",
        "redress_outbox_published_total": "Events the outbox relay published, by topic.",
        "redress_outbox_publish_duration_seconds": "Time of one relay cycle: claim, publish, await delivery, mark.",
        "redress_consumer_lag": "Messages of a partition a consumer group has yet to commit (high watermark less committed offset).",
        "redress_complaints_received_total": "Complaints registered, by channel and receiving branch.",
        "redress_complaints_rejected_total": "Submissions refused, by the field at fault.",
        "redress_complaints_duplicates_total": "Submissions that repeated an already registered reference (answered with the first registration).",
        "redress_complaints_repeats_total": "Complaints linked to an open complaint of the same customer, by channel.",
        "redress_complaints_assigned_total": "Complaints routing assigned, by handling unit.",
        "redress_intake_latency_seconds": "Time to register a complaint, from request to commit.",
        "redress_intake_batch_size": "Requests registered by one intake transaction (group commit).",
        "redress_intake_batch_seconds": "Time of one intake registration transaction, from its start to its commit.",
        "redress_routing_latency_seconds": "Time from registration to assignment.",
        "redress_routing_reroutes_total": "Cases routing moved again (escalated, transferred, reopened), by reason.",
        "redress_routing_unassignable_total": "Complaints routing could not give to an agent (left to the unit's supervisors), by unit.",
        "redress_routing_workload_ratio": "Open cases of the busiest eligible agent over their capacity, by unit.",
        "redress_case_transitions_total": "Case actions taken, by action.",
        "redress_case_closures_total": "Cases closed, by liability.",
        "redress_case_released_total": "Open cases handed on when their owner was deactivated.",
        "redress_case_queue_reads_total": "Staff queue reads, by queue.",
        "redress_case_liable_ratio": "Share of closed cases found liable, by unit.",
        "redress_cases_open": "Open cases, by handling unit and status.",
        "redress_personal_data_reads_total": "Audited reads of a customer's full personal data, by purpose kind.",
        "redress_staff_changes_total": "Changes to the staff directory, by kind.",
        "redress_sla_leader": "1 on the supervisor instance that holds the deadline scan's leadership.",
        "redress_sla_warnings_total": "SLA warnings raised, by clock kind.",
        "redress_sla_breaches_total": "SLA breaches raised, by clock kind.",
        "redress_sla_time_to_breach_seconds": "Time left on a clock when its warning was raised.",
        "redress_sla_clocks_open": "SLA clocks of open cases neither stopped nor breached (paused ones included), by kind and unit.",
        "redress_sla_clocks_paused": "Paused SLA clocks of open cases, by kind and unit.",
        "redress_sla_clocks_at_risk": "SLA clocks of open cases past their warning and not breached, by kind and unit.",
        "redress_sla_clocks_breached": "SLA clocks of open cases past their due time and not stopped, by kind and unit.",
        "redress_sla_breach_ratio": "Share of the clocks of cases closed in the last 90 days that breached, by kind and unit.",
        "redress_sla_calendar_missing": "1 while a region's working calendar lacks a year a clock or the coming weeks need.",
        "redress_notifications_recorded_total": "Notifications composed, by channel and template.",
        "redress_notifications_outcomes_total": "Notification sends, by channel and outcome (delivered, retrying, failed).",
        "redress_notifications_deferred_total": "SMS held for the end of quiet hours.",
        "redress_notifications_throttled_total": "Sends that waited for their channel's rate limit.",
        "redress_surveys_scheduled_total": "Return visits scheduled at closure.",
        "redress_survey_invitations_total": "Return-visit invitations sent, by unit.",
        "redress_survey_answers_total": "Return visits answered, by outcome.",
        "redress_survey_completion_ratio": "Share of closed complaints with an answered return visit.",
        "redress_survey_response_ratio": "Share of invited return visits answered.",
        "redress_survey_csat_ratio": "Share of answered return visits scoring 4 or 5.",
        "redress_status_lookups_total": "Customers' status look-ups, by outcome.",
        "redress_console_sign_ins_total": "Console sign-ins, by outcome.",
        "redress_console_actions_total": "Case actions taken through the console, by action and outcome.",
        "redress_console_registrations_total": "Complaints registered at the console's counter form, by outcome.",
        "redress_console_csrf_refusals_total": "Console forms refused for a missing or wrong CSRF token.",
    ]

    /// The help of a metric family: its own line, or for a name the table lacks (a histogram's
    /// families share their base name) the base name's, or the name in words.
    public static func text(for name: String) -> String {
        if let text = texts[name] { return text }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            if let text = texts[String(name.dropLast(suffix.count))] { return text }
        }
        return name.replacingOccurrences(of: "_", with: " ") + "."
    }

    /// The exposition with a `# HELP` line before every `# TYPE` line that lacks one.
    public static func annotate(_ exposition: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(exposition.count + 4096)
        var previousWasHelp = false
        for line in exposition.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: Array("# TYPE ".utf8)), !previousWasHelp {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                out += Array("# HELP \(name) \(text(for: name))\n".utf8)
            }
            previousWasHelp = line.starts(with: Array("# HELP ".utf8))
            out += line
            out.append(UInt8(ascii: "\n"))
        }
        // split keeps a last empty piece after the final newline: do not add a second one.
        if exposition.last == UInt8(ascii: "\n"), out.count >= 2 { out.removeLast() }
        return out
    }
}
