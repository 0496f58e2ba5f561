import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A message gateway on loopback, as an SMS/WeChat provider would run it: it honours
/// `Idempotency-Key` (a repeat is answered, not delivered again) and can be told to fail, hang
/// or rate-limit for chosen recipients.
final class GatewayStub: Sendable {
    enum Behaviour: Sendable {
        case accept
        case fail(Int)
        /// Fails this many times with 500, then accepts.
        case flaky(Int)
        case hang
        case rateLimit(retryAfter: Int)
    }

    struct Received: Sendable {
        var key: String
        var to: String
        var body: String
    }

    private let state = NIOLockedValueBox<(behaviours: [String: Behaviour], requests: [Received], delivered: [String: Received])>(([:], [], [:]))

    func behave(_ behaviour: Behaviour, for recipient: String) { state.withLockedValue { $0.behaviours[recipient] = behaviour } }
    var requests: [Received] { state.withLockedValue { $0.requests } }
    /// What reached a phone: one per idempotency key.
    var delivered: [String: Received] { state.withLockedValue { $0.delivered } }

    struct Message: Decodable {
        var id: String
        var to: String
        var body: String
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("send") { [self] request, context -> Response in
            let message = try await request.decode(as: Message.self, context: context)
            let key = request.headers[HTTPField.Name("Idempotency-Key")!] ?? ""
            let received = Received(key: key, to: message.to, body: message.body)
            let behaviour = state.withLockedValue { state -> Behaviour in
                state.requests.append(received)
                let behaviour = state.behaviours[message.to] ?? .accept
                if case .flaky(let n) = behaviour { state.behaviours[message.to] = n > 1 ? .flaky(n - 1) : .accept }
                return behaviour
            }
            switch behaviour {
            case .accept, .flaky(0):
                state.withLockedValue { if $0.delivered[key] == nil { $0.delivered[key] = received } }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"messageId":"gw-\#(key)"}"#)))
            case .fail(let code):
                return Response(status: .init(code: code))
            case .flaky:
                return Response(status: .internalServerError)
            case .hang:
                // Far longer than any client timeout under test, so an answer before it proves the timeout cut in.
                try await Task.sleep(for: .seconds(12))
                return Response(status: .ok)
            case .rateLimit(let after):
                return Response(status: .tooManyRequests, headers: [.retryAfter: String(after)])
            }
        }
        return router
    }

    /// Runs `body` with the gateway listening; passes its URL.
    func run(_ body: @Sendable @escaping (String) async throws -> Void) async throws {
        try await Application(router: router()).test(.live) { client in
            try await body("http://127.0.0.1:\(client.port!)/send")
        }
    }
}

/// A mail server on loopback that accepts (or refuses, per recipient) and keeps what it received.
final class SMTPSink: Sendable {
    struct Mail: Sendable {
        var from: String
        var to: String
        var data: String

        /// The decoded Subject header (RFC 2047, base64 UTF-8).
        var subject: String {
            guard let line = data.split(separator: "\r\n").first(where: { $0.hasPrefix("Subject: =?UTF-8?B?") }) else { return "" }
            let encoded = line.dropFirst("Subject: =?UTF-8?B?".count).dropLast(2)
            return Data(base64Encoded: String(encoded)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }

        var body: String {
            guard let start = data.range(of: "\r\n\r\n") else { return "" }
            let encoded = data[start.upperBound...].replacingOccurrences(of: "\r\n", with: "")
            return Data(base64Encoded: encoded).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }

    private let state = NIOLockedValueBox<(mails: [Mail], refuse: Set<String>)>(([], []))
    var mails: [Mail] { state.withLockedValue { $0.mails } }
    func refuse(_ address: String) { state.withLockedValue { _ = $0.refuse.insert(address) } }

    /// Runs `body` with the sink listening; passes its port.
    func run(_ body: @Sendable @escaping (Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        let port = server.channel.localAddress!.port!
        try await withThrowingTaskGroup(of: Void.self) { outer in
            outer.addTask {
                try await server.executeThenClose { connections in
                    try await withThrowingDiscardingTaskGroup { inner in
                        for try await connection in connections {
                            inner.addTask { try? await self.serve(connection) }
                        }
                    }
                }
            }
            try await body(port)
            server.channel.close(promise: nil)
            outer.cancelAll()
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async throws {
        try await connection.executeThenClose { inbound, outbound in
            func say(_ line: String) async throws { try await outbound.write(ByteBuffer(string: line + "\r\n")) }
            try await say("220 sink.test ESMTP")
            var pending = ""
            var from = "", to = "", data = "", inData = false
            for try await chunk in inbound {
                pending += String(buffer: chunk)
                while let end = pending.range(of: "\r\n") {
                    let line = String(pending[..<end.lowerBound])
                    pending.removeSubrange(..<end.upperBound)
                    if inData {
                        if line == "." {
                            inData = false
                            state.withLockedValue { $0.mails.append(Mail(from: from, to: to, data: data)) }
                            try await say("250 2.0.0 queued as sink-\(mails.count)")
                        } else {
                            data += line + "\r\n"
                        }
                        continue
                    }
                    let upper = line.uppercased()
                    if upper.hasPrefix("EHLO") || upper.hasPrefix("HELO") {
                        try await say("250-sink.test")
                        try await say("250 8BITMIME")
                    } else if upper.hasPrefix("MAIL FROM:") {
                        from = String(line.dropFirst(10)).trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
                        try await say("250 OK")
                    } else if upper.hasPrefix("RCPT TO:") {
                        to = String(line.dropFirst(8)).trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
                        if state.withLockedValue({ $0.refuse.contains(to) }) { try await say("550 5.1.1 mailbox unavailable") } else { try await say("250 OK") }
                    } else if upper == "DATA" {
                        inData = true
                        data = ""
                        try await say("354 end with .")
                    } else if upper == "QUIT" {
                        try await say("221 bye")
                        return
                    } else {
                        try await say("500 unknown")
                    }
                }
            }
        }
    }
}
