import Foundation
import Hummingbird
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import RedressContracts

/// The request context of every Redress service: Hummingbird's core plus the verified caller.
public struct RedressRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity?
    /// The client's IP address (no port), for limits per client such as the survey links' guard against guessing.
    public let remoteIP: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteIP = source.channel.remoteAddress?.ipAddress
    }

    /// Bodies above this are refused with 413 before they are read.
    public var maxUploadSize: Int { 256 * 1024 }

    /// The verified caller; routes behind `RequireRoles` always have one.
    public func caller() throws -> Identity {
        guard let identity else { throw Problem(status: .unauthorized, title: "Authentication required", detail: "send Authorization: Bearer <token>") }
        return identity
    }
}

/// An RFC 7807 problem document: what was wrong, in words a person can act on, and per-field errors.
public struct Problem: Error, Sendable, Codable, ResponseGenerator {
    public var type: String
    public var title: String
    public var status: Int
    public var detail: String
    public var errors: [FieldError]?
    /// Seconds to wait before trying again (a `Retry-After` header), for 429 and 503.
    public var retryAfter: Int?

    enum CodingKeys: String, CodingKey {
        case type, title, status, detail, errors
    }

    public init(status: HTTPResponse.Status, title: String, detail: String, errors: [FieldError]? = nil, retryAfter: Int? = nil) {
        self.retryAfter = retryAfter
        self.type = "about:blank"
        self.title = title
        self.status = status.code
        self.detail = detail
        self.errors = errors
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(self)
        var headers: HTTPFields = [.contentType: "application/problem+json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(
            status: HTTPResponse.Status(code: status),
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error into a problem document, so no client ever gets an empty 500.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            return try problem.response(from: request, context: context)
        } catch let error as HTTPError {
            let problem = Problem(status: error.status, title: error.status.reasonPhrase, detail: error.body ?? error.status.reasonPhrase)
            return try problem.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            let problem = Problem(status: .internalServerError, title: "Internal error",
                                  detail: "the request could not be completed; nothing was changed if it was a write. Try again, and report request id \(context.id) if it persists")
            return try problem.response(from: request, context: context)
        }
    }
}

/// The staff directory as it is now, for every request with a staff token: a token says who its
/// holder was when it was minted; the directory says whether they are still active, and in that
/// role at that unit. Read per request (one primary-key lookup), so a deactivation or a move takes
/// effect at the next request, not when the token expires.
public struct StaffCheck: Sendable {
    let postgres: PostgresClient

    public init(postgres: PostgresClient) { self.postgres = postgres }

    public enum Verdict: Equatable, Sendable {
        case current
        case unknownOrInactive
        case changed(role: String, unit: String)
    }

    public func verdict(for identity: Identity, logger: Logger) async throws -> Verdict {
        let rows = try await postgres.query("SELECT active, role, org_unit FROM staff WHERE id = \(identity.subject)", logger: logger)
        for try await (active, role, unit) in rows.decode((Bool, String, String).self) {
            guard active else { return .unknownOrInactive }
            return role == identity.role.rawValue && unit == identity.unit ? .current : .changed(role: role, unit: unit)
        }
        return .unknownOrInactive
    }
}

/// Checks the bearer token, that its role is one the route accepts, and (with `staff`) that the
/// staff member is still active in that role at that unit. Channel tokens name channels, not staff.
public struct RequireRoles: RouterMiddleware {
    public typealias Context = RedressRequestContext
    let roles: Set<Role>
    let authority: TokenAuthority
    let staff: StaffCheck?

    public init(_ roles: Set<Role>, authority: TokenAuthority, staff: StaffCheck? = nil) {
        self.roles = roles
        self.authority = authority
        self.staff = staff
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw Problem(status: .unauthorized, title: "Authentication required", detail: "send Authorization: Bearer <token> (redressctl token mints one for development)")
        }
        let identity: Identity
        do {
            identity = try await authority.verify(String(header.dropFirst("Bearer ".count)))
        } catch {
            throw Problem(status: .unauthorized, title: "Invalid token", detail: error.description)
        }
        guard roles.contains(identity.role) else {
            throw Problem(status: .forbidden, title: "Role not allowed",
                          detail: "role '\(identity.role.rawValue)' may not use this route; it needs one of \(roles.map(\.rawValue).sorted().joined(separator: ", "))")
        }
        if let staff, identity.role != .channel {
            switch try await staff.verdict(for: identity, logger: context.logger) {
            case .current:
                break
            case .unknownOrInactive:
                throw Problem(status: .unauthorized, title: "Account not active",
                              detail: "'\(identity.subject)' is not an active staff member; the token no longer opens anything")
            case .changed(let role, let unit):
                throw Problem(status: .forbidden, title: "Token out of date",
                              detail: "the token says \(identity.role.rawValue) at \(identity.unit); the staff directory now says \(role) at \(unit): get a new token")
            }
        }
        var context = context
        context.identity = identity
        context.logger[metadataKey: "caller"] = "\(identity.subject)@\(identity.unit)"
        return try await next(request, context)
    }
}

/// Request count and duration per route, labelled by the route pattern (never the raw path, which holds ids).
public struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let service: String

    public init(service: String) { self.service = service }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let status: Int
        let response: Response
        do {
            response = try await next(request, context)
            status = Int(response.status.code)
        } catch {
            // Refusals and failures count too: 401, 403, 404, 422, 429, 500 are what an operator watches.
            let code = (error as? Problem)?.status ?? (error as? HTTPError).map { Int($0.status.code) } ?? 500
            record(request, context, status: code, since: start)
            throw error
        }
        record(request, context, status: status, since: start)
        return response
    }

    func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        let route = context.endpointPath ?? "unmatched"
        let method = request.method.rawValue
        Counter(label: "redress_http_requests_total", dimensions: [
            ("service", service), ("route", route), ("method", method), ("status", String(status)),
        ]).increment()
        Metrics.Timer(label: "redress_http_request_duration_seconds", dimensions: [("service", service), ("route", route), ("method", method)])
            .recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }
}

extension Duration {
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension Request {
    /// Reads the whole body, refusing oversize bodies (413) and non-UTF-8 bytes (400).
    public func utf8Body(context: some RequestContext) async throws -> [UInt8] {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: context.maxUploadSize)
        } catch {
            throw Problem(status: .contentTooLarge, title: "Body too large",
                          detail: "the body exceeds \(context.maxUploadSize) bytes; send attachments as references, not inline")
        }
        let bytes = Array(buffer.readableBytesView)
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw Problem(status: .badRequest, title: "Body is not UTF-8", detail: "send the JSON body encoded as UTF-8")
        }
        return bytes
    }
}

/// U+0000 in what a client sends: PostgreSQL's `text` refuses it, so it is refused at the door.
public enum NULCharacter {
    /// Refuses a decoded body whose fields hold U+0000. Read from the value re-encoded, so only the
    /// fields the request type takes count (unknown fields are ignored, as the API documents).
    public static func refuse<T: Encodable>(in value: T) throws {
        guard let data = try? JSONEncoder().encode(value), present(inJSON: Array(data)) else { return }
        throw Problem(status: .unprocessableContent, title: "NUL character in the body",
                      detail: "a text field contains U+0000 (\\u0000), which cannot be stored; remove it and send again")
    }

    /// A raw NUL byte, or a `\u0000` escape in JSON (an escape only when the backslashes before
    /// the `u` are odd in number: `\\u0000` is a backslash and the letters `u0000`).
    public static func present(inJSON bytes: [UInt8]) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let byte = bytes[index]
            if byte == 0 { return true }
            if byte == UInt8(ascii: "\\") {
                var run = 0
                while index < count, bytes[index] == UInt8(ascii: "\\") { run += 1; index += 1 }
                if run % 2 == 1, index + 4 < count, bytes[index] == UInt8(ascii: "u"),
                   bytes[index + 1] == UInt8(ascii: "0"), bytes[index + 2] == UInt8(ascii: "0"),
                   bytes[index + 3] == UInt8(ascii: "0"), bytes[index + 4] == UInt8(ascii: "0") {
                    return true
                }
                continue
            }
            index += 1
        }
        return false
    }

    /// U+0000 in a query parameter's value: a 400 naming it.
    public static func refuse(parameter name: String, _ value: String?) throws {
        guard let value, value.utf8.contains(0) else { return }
        throw Problem(status: .unprocessableContent, title: "NUL character", detail: "\(name): contains U+0000 (%00); remove it",
                      errors: [FieldError(name, "contains U+0000 (%00); remove it")])
    }

    /// `%00` in the request's path (query parameters are checked by the handlers that read them:
    /// unknown ones are ignored, as the API documents).
    public static func present(inPath path: String) -> Bool {
        path.range(of: "%00") != nil || path.utf8.contains(0)
    }
}

/// Refuses a path carrying U+0000 (`%00`) before any handler reads a key from it into SQL.
public struct NULInAddressMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if NULCharacter.present(inPath: request.uri.path) {
            return try Problem(status: .notFound, title: "Not Found",
                               detail: "the path contains %00 (U+0000): no case, staff member or survey has it in its key")
                .response(from: request, context: context)
        }
        return try await next(request, context)
    }
}

/// Adds up counter increments over a batch and records each labelled series once: a metrics
/// look-up per complaint costs more than the rest of the bookkeeping in a 500-event batch.
public struct CounterTally {
    private var counts: [[String]: Int] = [:]
    private let label: String
    private let dimensions: [String]

    public init(_ label: String, dimensions: [String]) {
        self.label = label
        self.dimensions = dimensions
    }

    public mutating func add(_ values: String..., count: Int = 1) {
        counts[values, default: 0] += count
    }

    public func record() {
        for (values, count) in counts {
            Counter(label: label, dimensions: Array(zip(dimensions, values))).increment(by: count)
        }
    }
}

extension Response {
    /// The same response with another status (a 201 for a created resource, say).
    public func withStatus(_ status: HTTPResponse.Status) -> Response {
        var response = self
        response.status = status
        return response
    }
}

/// An `application/x-www-form-urlencoded` body (what a browser posts), every value of every name:
/// the console's forms and the customer's pages read them alike.
public struct FormBody: Sendable {
    public var values: [String: [String]] = [:]

    public init(_ text: String) {
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            guard let name = parts.first.map(decode), !name.isEmpty else { continue }
            values[name, default: []].append(parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The value, trimmed; nil when absent or blank.
    public subscript(_ name: String) -> String? {
        guard let value = values[name]?.first?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }

    /// The raw value (blank included), for redisplay.
    public func raw(_ name: String) -> String { values[name]?.first ?? "" }
}

/// The methods each route path answers, read from the router once its routes are added
/// (`ServiceHost.run`), so that a method a path does not declare is answered 405 with `Allow`
/// (RFC 9110 §15.5.6) instead of the router's 404, which would say the path does not exist.
public final class RouteMethods: Sendable {
    struct Entry: Sendable {
        let segments: [String]
        var methods: Set<String>
    }
    private let entries = NIOLockedValueBox<[Entry]>([])

    public init() {}

    public func load<Context>(_ router: Router<Context>) {
        var byPath: [String: Entry] = [:]
        for route in router.routes {
            let segments = route.path.components.map(\.description)
            let key = segments.joined(separator: "/")
            byPath[key, default: Entry(segments: segments, methods: [])].methods.insert(route.method.rawValue)
        }
        entries.withLockedValue { $0 = Array(byPath.values) }
    }

    /// The methods declared for every route this path matches; nil when no route matches it.
    public func allowed(path: String) -> Set<String>? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var found: Set<String>?
        for entry in entries.withLockedValue({ $0 }) where Self.matches(entry.segments, parts) {
            found = (found ?? []).union(entry.methods)
        }
        return found
    }

    static func matches(_ pattern: [String], _ parts: [String]) -> Bool {
        if pattern.last == "**" { return parts.count >= pattern.count - 1 && matches(Array(pattern.dropLast()), Array(parts.prefix(pattern.count - 1))) }
        guard pattern.count == parts.count else { return false }
        for (segment, part) in zip(pattern, parts) {
            if segment == "*" || (segment.hasPrefix("{") && segment.hasSuffix("}")) || segment.hasPrefix(":") { continue }
            if segment.contains("*") || segment.contains("{") { continue }   // partial captures: treat as matching
            if segment != part { return false }
        }
        return true
    }
}

/// Answers 405 with `Allow` when the path exists but not for this method. HEAD is allowed wherever
/// GET is (Hummingbird answers it from the GET route).
public struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteMethods

    public init(routes: RouteMethods) { self.routes = routes }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let methods = routes.allowed(path: request.uri.path) {
            var allowed = methods
            if allowed.contains("GET") { allowed.insert("HEAD") }
            if !allowed.contains(request.method.rawValue) {
                let list = allowed.sorted().joined(separator: ", ")
                var response = try Problem(status: .methodNotAllowed, title: "Method not allowed",
                                           detail: "\(request.method.rawValue) is not supported on this path; use one of: \(list)")
                    .response(from: request, context: context)
                response.headers[.allow] = list
                return response
            }
        }
        return try await next(request, context)
    }
}
