import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressKafka
import RedressServiceKit
import RedressStore
import ServiceLifecycle

/// `redress-intake`: registers complaints from `POST /v1/complaints` and from the inbound topic,
/// through the same validation and the same registrar.
public enum IntakeService {
    public static let name = "redress-intake"
    public static let defaultPort = 8081
    public static let consumerGroup = "redress-intake"
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!

    public static func main() async throws {
        try await ServiceHost.serve(service: name, defaultPort: defaultPort) { build(host: $0) }
    }

    public static func build(host: ServiceHost, environment: [String: String] = ProcessInfo.processInfo.environment) -> (Router<RedressRequestContext>, [any Service]) {
        var env = EnvironmentReader(environment)
        let window = env.integer("REDRESS_SECOND_COMPLAINT_DAYS", 30, 1...365)
        do {
            try env.check()
        } catch {
            // A bad setting stops the start with its name, rather than silently defaulting.
            host.logger.critical("\(error)")
            exit(2)
        }
        // Ready when PostgreSQL is: what it takes in goes to the outbox, sent when the broker is back.
        host.readyWithoutBroker()
        let registrar = Registrar(personalData: host.personalData, numbers: host.postgres, secondComplaintDays: window)
        let router = host.router()
        IntakeController(batcher: SubmissionBatcher(registrar: registrar, postgres: host.postgres, logger: host.logger))
            .add(to: router.group("v1/complaints").add(middleware: RequireRoles([.channel, .agent, .supervisor, .admin], authority: host.tokens,
                                                                                         staff: StaffCheck(postgres: host.postgres))))
        let inbound = host.consumer(group: consumerGroup, topics: [Topics.inbound], handler: InboundHandler(registrar: registrar))
        return (router, [inbound])
    }

    /// Decodes a submission, naming the field when the JSON does not fit the contract.
    static let decoder = EventCoding.decoder()

    static func decode(_ bytes: [UInt8]) -> Result<ComplaintSubmission, SubmissionRejected> {
        do {
            let submission = try decoder.decode(ComplaintSubmission.self, from: Data(bytes))
            // PostgreSQL's text cannot hold U+0000: named here, on both paths, rather than failing the batch.
            // The raw scan is cheap and almost always false; the re-encoding then looks only at known fields.
            if NULCharacter.present(inJSON: bytes), (try? NULCharacter.refuse(in: submission)) == nil {
                return .failure(SubmissionRejected(errors: [FieldError("body", "a text field contains U+0000 (\\u0000), which cannot be stored; remove it")]))
            }
            return .success(submission)
        } catch {
            let description = EventCoding.describe(error)
            let field = description.split(separator: ":", maxSplits: 1).first.map(String.init) ?? "body"
            let message = description.split(separator: ":", maxSplits: 1).dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) } ?? description
            return .failure(SubmissionRejected(errors: [FieldError(field == "the body is not valid JSON" ? "body" : field, field == "the body is not valid JSON" ? description : message)]))
        }
    }

    /// Counts refusals by field, as a metric label: array positions are dropped (`customer.flags[]`,
    /// not one series per index), and each field is counted once per submission.
    static func countRejection(_ rejected: SubmissionRejected) {
        for field in Set(rejected.errors.map { metricField($0.field) }) {
            Counter(label: "redress_complaints_rejected_total", dimensions: [("reason", field)]).increment()
        }
    }

    static func metricField(_ field: String) -> String {
        field.replacingOccurrences(of: #"\[[0-9]+\]"#, with: "[]", options: .regularExpression)
    }
}

struct RegistrationAnswer: ResponseEncodable {
    var id: UUID
    var number: String
    var status: String
    var promisedReplyBy: String
    var duplicate: Bool
    var repeatOf: ComplaintReference?
}

struct IntakeController {
    let batcher: SubmissionBatcher

    func add(to group: RouterGroup<RedressRequestContext>) {
        group.post { request, context in
            let start = ContinuousClock.now
            let bytes = try await request.utf8Body(context: context)
            var submission: ComplaintSubmission
            switch IntakeService.decode(bytes) {
            case .success(let s): submission = s
            case .failure(let rejected):
                IntakeService.countRejection(rejected)
                throw Problem(status: .badRequest, title: "Malformed complaint", detail: rejected.summary, errors: rejected.errors)
            }
            // A channel's token is bound to its channel, so one sender cannot take another's references.
            let caller = try context.caller()
            if caller.role == .channel {
                guard let bound = Channel(rawValue: caller.subject) else {
                    throw Problem(status: .forbidden, title: "Channel token without a channel",
                                  detail: "a channel token names its channel as its subject (redressctl token --role channel --subject online); this one names '\(caller.subject)'")
                }
                // A value that is no channel at all is validation's to name, with the other field errors.
                if let given = submission.channel, Channel(rawValue: given) != nil, given != bound.rawValue {
                    throw Problem(status: .forbidden, title: "Wrong channel",
                                  detail: "this token is for channel '\(bound.rawValue)'; it cannot submit complaints of channel '\(given)'")
                }
            }
            // Idempotency-Key stands for the external reference when the sender has none of its own:
            // a retry with the same key is answered with the first complaint.
            if let key = request.headers[IntakeService.idempotencyKey] {
                if submission.externalRef == nil {
                    submission.externalRef = key
                } else if submission.externalRef != key {
                    let rejected = SubmissionRejected(errors: [FieldError("Idempotency-Key", "differs from externalRef; send one of them, or the same value in both")])
                    IntakeService.countRejection(rejected)
                    throw Problem(status: .unprocessableContent, title: "Invalid complaint", detail: rejected.summary, errors: rejected.errors)
                }
            }
            let valid: ValidSubmission
            switch SubmissionValidator.validate(submission, now: Date()) {
            case .success(let v): valid = v
            case .failure(let rejected):
                IntakeService.countRejection(rejected)
                throw Problem(status: .unprocessableContent, title: "Invalid complaint",
                              detail: "\(rejected.errors.count) field(s) need correcting: \(rejected.summary)", errors: rejected.errors)
            }
            let registration: Registration
            do {
                registration = try await batcher.register(valid)
            } catch Registrar.Failure.unknownBranch(_, let branch) {
                let rejected = SubmissionRejected(errors: [FieldError("branch", "'\(branch)' is not a unit of the organisation; use the code of the customer's branch")])
                IntakeService.countRejection(rejected)
                throw Problem(status: .unprocessableContent, title: "Invalid complaint", detail: rejected.summary, errors: rejected.errors)
            }
            Metrics.Timer(label: "redress_intake_latency_seconds").recordNanoseconds((ContinuousClock.now - start).nanoseconds)
            context.logger.info("complaint registered", metadata: [
                "number": "\(registration.number)", "channel": "\(valid.channel.rawValue)", "duplicate": "\(registration.duplicate)",
            ])
            let answer = RegistrationAnswer(
                id: registration.id, number: registration.number, status: registration.status,
                promisedReplyBy: Timestamp.format(registration.promisedReplyBy), duplicate: registration.duplicate,
                repeatOf: registration.repeatOf)
            return EditedResponse(status: registration.duplicate ? .ok : .created, response: answer)
        }
    }
}

/// Submissions from upstream channels on `redress.complaints.inbound`. Idempotent by
/// (channel, external reference), so it needs no inbox; invalid ones are dead-lettered with the reason.
struct InboundHandler: BatchHandler {
    let registrar: Registrar

    func decode(_ message: KafkaMessage) -> Result<ValidSubmission, Rejection> {
        let submission: ComplaintSubmission
        switch IntakeService.decode(message.value) {
        case .success(let s): submission = s
        case .failure(let rejected):
            IntakeService.countRejection(rejected)
            return .failure(Rejection(index: 0, reason: rejected.summary))
        }
        switch SubmissionValidator.validate(submission, now: Date()) {
        case .success(let valid): return .success(valid)
        case .failure(let rejected):
            IntakeService.countRejection(rejected)
            return .failure(Rejection(index: 0, reason: rejected.summary))
        }
    }

    func eventID(of item: ValidSubmission) -> UUID? { nil }

    func handle(_ items: [ValidSubmission], on connection: PostgresConnection, logger: Logger) async throws {
        let start = ContinuousClock.now
        do {
            _ = try await registrar.register(items, on: connection, logger: logger)
        } catch Registrar.Failure.unknownBranch(let index, let branch) {
            Counter(label: "redress_complaints_rejected_total", dimensions: [("reason", "branch")]).increment()
            throw Rejection(index: index, reason: "branch: '\(branch)' is not a unit of the organisation")
        }
        let perItem = (ContinuousClock.now - start).nanoseconds / Int64(max(1, items.count))
        Metrics.Timer(label: "redress_intake_latency_seconds").recordNanoseconds(perItem)
    }
}
