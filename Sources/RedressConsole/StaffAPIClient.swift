import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RedressServiceKit

/// The console's way to the rules: every read and every action goes through the staff API of
/// `redress-cases` (and registration through `redress-intake`) as the signed-in staff member, with a
/// token minted for that one request. The console holds no second copy of a rule; row-level
/// security, the state machine and the field checks are the API's.
public struct StaffAPIClient: Sendable {
    public var casesURL: String
    public var intakeURL: String
    let tokens: TokenAuthority
    let client: HTTPClient

    public init(casesURL: String, intakeURL: String, tokens: TokenAuthority, client: HTTPClient = .shared) {
        self.casesURL = casesURL
        self.intakeURL = intakeURL
        self.tokens = tokens
        self.client = client
    }

    /// What the API answered: its status and its JSON (a problem document when refused).
    public struct Answer: @unchecked Sendable {
        public var status: Int
        public var json: Any?
        /// The body as it came (a CSV download passes through unchanged).
        public var raw: [UInt8] = []

        public var object: [String: Any] { json as? [String: Any] ?? [:] }
        public var ok: Bool { (200..<300).contains(status) }

        /// The problem's field errors by field name, and its detail: what the page shows beside the fields.
        public var fieldErrors: [String: String] {
            var errors: [String: String] = [:]
            for item in object["errors"] as? [[String: Any]] ?? [] {
                if let field = item["field"] as? String, let message = item["message"] as? String { errors[field] = message }
            }
            return errors
        }

        public var detail: String { object["detail"] as? String ?? "HTTP \(status)" }
    }

    func token(_ session: ConsoleSession) async -> String {
        // Short-lived: it lives for one request to the API.
        await tokens.mint(subject: session.staffID, role: session.role, unit: session.unit, lifetime: .seconds(120))
    }

    public func get(_ path: String, as session: ConsoleSession, logger: Logger) async throws -> Answer {
        try await call(.GET, casesURL + path, body: nil, as: session, logger: logger)
    }

    public func post(_ path: String, body: [String: Any], as session: ConsoleSession, base: String? = nil, logger: Logger) async throws -> Answer {
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await call(.POST, (base ?? casesURL) + path, body: Array(data), as: session, logger: logger)
    }

    public func patch(_ path: String, body: [String: Any], as session: ConsoleSession, logger: Logger) async throws -> Answer {
        let data = try JSONSerialization.data(withJSONObject: body)
        return try await call(.PATCH, casesURL + path, body: Array(data), as: session, logger: logger)
    }

    func call(_ method: HTTPMethod, _ url: String, body: [UInt8]?, as session: ConsoleSession, logger: Logger) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer " + (await token(session)))
        request.headers.add(name: "Accept", value: "application/json")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(10))
        } catch {
            logger.error("the staff API did not answer", metadata: ["url": "\(url.split(separator: "?").first ?? "")", "error": "\(String(reflecting: error))"])
            throw ConsoleError("the case service did not answer; try again in a moment")
        }
        let bytes = try await response.body.collect(upTo: 8 * 1024 * 1024)
        let json = bytes.readableBytes == 0 ? nil : try? JSONSerialization.jsonObject(with: Data(buffer: bytes))
        return Answer(status: Int(response.status.code), json: json, raw: Array(bytes.readableBytesView))
    }
}
