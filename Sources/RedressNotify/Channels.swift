import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import RedressDomain

/// One message to one address on one channel. `id` is the notification's id: gateways get it as
/// the idempotency key, email as the Message-ID, so a retry after an unknown outcome is recognisable.
public struct OutgoingMessage: Sendable, Equatable {
    public var id: UUID
    public var channel: String
    public var address: String
    public var template: String
    public var subject: String?
    public var body: String

    public init(id: UUID, channel: String, address: String, template: String, subject: String?, body: String) {
        self.id = id
        self.channel = channel
        self.address = address
        self.template = template
        self.subject = subject
        self.body = body
    }
}

public enum DeliveryOutcome: Sendable, Equatable {
    /// Accepted by the gateway or the mail server: the receipt is the proof (告知 evidence).
    case delivered(receipt: String?)
    /// Worth another try (timeout, 5xx, rate limited), after `after` when the gateway says.
    case retry(reason: String, after: Double?)
    /// Will never work (a refused address, a 4xx): no more tries.
    case failed(reason: String)
}

/// Every channel — SMS, WeChat, email — behind one interface.
public protocol NotificationChannel: Sendable {
    func send(_ message: OutgoingMessage) async -> DeliveryOutcome
}

/// SMS and WeChat template messages through an HTTP gateway: `POST` JSON
/// `{id, channel, to, template, subject, body}` with the deployment's auth header and
/// `Idempotency-Key: <id>`. 2xx delivers (the body's `messageId` is the receipt), 429 and 5xx and
/// timeouts retry (honouring `Retry-After`), other 4xx fail.
public struct HTTPGatewayChannel: NotificationChannel {
    let url: String
    let authorization: String?
    let timeout: TimeAmount
    let client: HTTPClient

    public init(url: String, authorization: String?, timeout: TimeAmount, client: HTTPClient = .shared) {
        self.url = url
        self.authorization = authorization
        self.timeout = timeout
        self.client = client
    }

    struct Body: Encodable {
        var id: String
        var channel: String
        var to: String
        var template: String
        var subject: String?
        var body: String
    }

    public func send(_ message: OutgoingMessage) async -> DeliveryOutcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: message.id.uuidString.lowercased())
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        do {
            let body = try JSONEncoder().encode(Body(id: message.id.uuidString.lowercased(), channel: message.channel, to: message.address,
                                                     template: message.template, subject: message.subject, body: message.body))
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: timeout)
            let reply = try await response.body.collect(upTo: 64 * 1024)
            let code = Int(response.status.code)
            switch code {
            case 200..<300:
                let receipt = ((try? JSONSerialization.jsonObject(with: Data(buffer: reply))) as? [String: Any])?["messageId"] as? String
                return .delivered(receipt: receipt)
            case 429:
                return .retry(reason: "gateway rate-limited (429)", after: response.headers.first(name: "Retry-After").flatMap(Double.init))
            case 408, 500..<600:
                return .retry(reason: "gateway answered \(code)", after: nil)
            default:
                // The gateway's own words may quote the address: the status code says enough.
                return .failed(reason: "gateway refused the message (\(code))")
            }
        } catch {
            return .retry(reason: "gateway unreachable or too slow: \(type(of: error))", after: nil)
        }
    }
}

/// Email through SMTP (no TLS or AUTH here: the deployment's relay on a trusted network).
public struct SMTPChannel: NotificationChannel {
    let host: String
    let port: Int
    let from: String
    let timeout: TimeAmount

    public init(host: String, port: Int, from: String, timeout: TimeAmount) {
        self.host = host
        self.port = port
        self.from = from
        self.timeout = timeout
    }

    struct Refused: Error {
        var code: Int
        var line: String
    }

    public func send(_ message: OutgoingMessage) async -> DeliveryOutcome {
        guard !message.address.contains(where: { $0.isNewline || $0 == "<" || $0 == ">" }) else {
            return .failed(reason: "the email address holds characters no address may hold")
        }
        do {
            let receipt = try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask { try await transact(message) }
                group.addTask {
                    try await Task.sleep(for: .nanoseconds(timeout.nanoseconds))
                    throw ChannelError.ioOnClosedChannel
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            return .delivered(receipt: receipt)
        } catch let refused as Refused {
            // 4xx is temporary in SMTP; 5xx is permanent.
            // The server's text often quotes the address: the code says enough.
            let reason = "mail server answered \(refused.code)"
            return refused.code >= 500 ? .failed(reason: reason) : .retry(reason: reason, after: nil)
        } catch {
            return .retry(reason: "mail server unreachable or too slow: \(type(of: error))", after: nil)
        }
    }

    func transact(_ message: OutgoingMessage) async throws -> String {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(timeout)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var replies = inbound.makeAsyncIterator()
            var pending = ""
            // A reply is one or more lines "ddd-…" ending with "ddd …".
            func reply(expect: Int) async throws -> String {
                while true {
                    if let end = pending.range(of: "\r\n") {
                        let line = String(pending[..<end.lowerBound])
                        pending.removeSubrange(..<end.upperBound)
                        let chars = Array(line)
                        guard chars.count >= 3, let code = Int(String(chars[0..<3])) else { throw Refused(code: 554, line: line) }
                        if chars.count > 3 && chars[3] == "-" { continue }
                        guard code / 100 == expect / 100 else { throw Refused(code: code, line: line) }
                        return line
                    }
                    guard let chunk = try await replies.next() else { throw ChannelError.eof }
                    pending += String(buffer: chunk)
                }
            }
            func command(_ text: String, expect: Int) async throws -> String {
                try await outbound.write(ByteBuffer(string: text + "\r\n"))
                return try await reply(expect: expect)
            }
            _ = try await reply(expect: 220)
            _ = try await command("EHLO redress", expect: 250)
            _ = try await command("MAIL FROM:<\(from)>", expect: 250)
            _ = try await command("RCPT TO:<\(message.address)>", expect: 250)
            _ = try await command("DATA", expect: 354)
            let accepted = try await command(Self.mail(message, from: from), expect: 250)
            _ = try? await command("QUIT", expect: 221)
            return accepted
        }
    }

    /// The message: UTF-8 subject (RFC 2047) and a base64 body, so no line needs dot-stuffing.
    static func mail(_ message: OutgoingMessage, from: String) -> String {
        let subject = "=?UTF-8?B?" + Data((message.subject ?? "").utf8).base64EncodedString() + "?="
        let body = Data(message.body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return [
            "From: <\(from)>", "To: <\(message.address)>", "Subject: \(subject)",
            "Message-ID: <\(message.id.uuidString.lowercased())@redress>", "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: base64", "", body, ".",
        ].joined(separator: "\r\n")
    }
}

/// Development only (`log:` as the gateway URL): logs the masked message and reports it delivered.
public struct LogChannel: NotificationChannel {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func send(_ message: OutgoingMessage) async -> DeliveryOutcome {
        logger.info("notification (log channel)", metadata: ["channel": "\(message.channel)", "template": "\(message.template)", "id": "\(message.id)"])
        return .delivered(receipt: "log:\(message.id.uuidString.lowercased())")
    }
}
